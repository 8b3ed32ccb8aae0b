// Output projectors: map the LLM's hidden states at the signal tokens ([IMG0..IMGk]) to a generator's conditioning
// space (research/vlm-components.md §4.1–4.3), as NExT-GPT's TextFcLayer does:
//   linear:      conditioning = model(h)                                   [B, k, D_cond]
//   transformer: conditioning = model(Transformer(fc(h), query_embs))      [B, Q, D_cond]
// where the Transformer is PyTorch's nn.Transformer (pre-norm, ReLU feed-forward, no dropout, no masks) with the
// learnable queries as the decoder input. Weight names match NExT-GPT's state dict (fc, tfm.*, model, query_embs).

import { z } from 'zod';
import {
  type MetaBuildContext,
  NodeBuildError,
  type Scope,
  attentionCore,
  closeScope,
  dimOf,
  init,
  layerNorm,
  linear,
  openScope,
  parameterCount,
  portInput,
  portOutput,
  sliceAxis,
} from './blocks.js';
import { type BuildContext, type NodeTypeDef, type OnnxFragment, type PortSpec, type ResolvedShapes, downstreamKey } from './types.js';

interface SignalDims {
  mode: 'linear' | 'transformer';
  num_signal_tokens: number;
  num_queries: number;
  d_cond: number;
  d_model: number;
  heads: number;
  encoder_layers: number;
  decoder_layers: number;
  ff_dim: number;
}

export const SIGNAL_PRESETS: Record<'tiny' | 'nextgpt', SignalDims> = {
  tiny: { mode: 'transformer', num_signal_tokens: 4, num_queries: 8, d_cond: 64, d_model: 64, heads: 4, encoder_layers: 1, decoder_layers: 1, ff_dim: 256 },
  /** NExT-GPT image branch: 4 signal tokens → 77×768 SD-1.5 prompt embeddings. */
  nextgpt: { mode: 'transformer', num_signal_tokens: 4, num_queries: 77, d_cond: 768, d_model: 512, heads: 4, encoder_layers: 4, decoder_layers: 4, ff_dim: 2048 },
};

const posInt = z.number().int().min(1);

export const SignalTokenParams = z
  .object({
    preset: z.enum(['tiny', 'nextgpt']).default('tiny'),
    mode: z.enum(['linear', 'transformer']).optional(),
    num_signal_tokens: posInt.max(256).optional(),
    positions: z.enum(['last', 'input']).default('last'),
    add_input_embeds: z.boolean().default(false),
    d_llm: z.union([posInt, z.literal('auto')]).default('auto'),
    d_cond: z.union([posInt, z.literal('auto')]).default('auto'),
    num_queries: posInt.max(1024).optional(),
    d_model: posInt.optional(),
    heads: posInt.optional(),
    encoder_layers: z.number().int().min(0).max(24).optional(),
    decoder_layers: posInt.max(24).optional(),
    ff_dim: posInt.optional(),
  })
  .strict();
export type SignalTokenParams = z.infer<typeof SignalTokenParams>;

const paramDocs: Record<string, string> = {
  preset: "Dimension preset: 'tiny' (4 signal tokens → 8×64, d_model 64, 1+1 layers) or 'nextgpt' (4 → 77×768, d_model 512, 4+4 layers, 4 heads, ff 2048).",
  mode: "'linear': one Linear per signal token (conditioning has k tokens). 'transformer': Linear → encoder-decoder Transformer with learnable queries → Linear (conditioning has num_queries tokens). Default: from the preset.",
  num_signal_tokens: 'k, the number of signal tokens [IMG0..IMGk−1] whose hidden states are projected (NExT-GPT 4, MiniGPT-5 8). Overrides the preset.',
  positions: "'last': the signal tokens are the last k positions of hidden_states. 'input': their positions come from the int64 input signal_positions [B,k].",
  add_input_embeds: 'Add the input embeddings of the signal tokens (input inputs_embeds, gathered at the same positions) to their hidden states, as NExT-GPT does.',
  d_llm: "Width of hidden_states; 'auto' takes it from the connected LLM.",
  d_cond: "Width of conditioning; 'auto' takes it from the connected generator (cross_attention_dim), else the preset.",
  num_queries: 'Q, learnable query tokens of the transformer decoder = conditioning length (77 for Stable Diffusion prompts). Overrides the preset.',
  d_model: 'Transformer width. Overrides the preset.',
  heads: 'Attention heads of the transformer. Overrides the preset.',
  encoder_layers: 'Transformer encoder layers over the signal tokens (0 = the decoder attends to fc(h) directly). Overrides the preset.',
  decoder_layers: 'Transformer decoder layers (self-attention over queries, cross-attention to the encoded signal tokens). Overrides the preset.',
  ff_dim: 'Feed-forward width of the transformer layers (4·d_model by default).',
};

export interface ResolvedSignal extends SignalDims {
  d_llm: number;
  positions: 'last' | 'input';
  add_input_embeds: boolean;
}

export function resolveSignal(p: SignalTokenParams, shapes: ResolvedShapes, what = 'outproj.signal_tokens'): ResolvedSignal {
  const base = SIGNAL_PRESETS[p.preset];
  const d_model = p.d_model ?? base.d_model;
  let d_llm: number;
  if (p.d_llm !== 'auto') d_llm = p.d_llm;
  else {
    const d = shapes.hidden_states?.[2];
    if (typeof d !== 'number') {
      throw new NodeBuildError(`${what}: d_llm is 'auto' but the width of input 'hidden_states' is unknown; connect an LLM or set d_llm`);
    }
    d_llm = d;
  }
  let d_cond = base.d_cond;
  if (p.d_cond !== 'auto') d_cond = p.d_cond;
  else {
    const d = shapes[downstreamKey('conditioning')]?.[2];
    if (typeof d === 'number') d_cond = d;
  }
  const r: ResolvedSignal = {
    mode: p.mode ?? base.mode,
    num_signal_tokens: p.num_signal_tokens ?? base.num_signal_tokens,
    num_queries: p.num_queries ?? base.num_queries,
    d_cond,
    d_model,
    heads: p.heads ?? base.heads,
    encoder_layers: p.encoder_layers ?? base.encoder_layers,
    decoder_layers: p.decoder_layers ?? base.decoder_layers,
    ff_dim: p.ff_dim ?? (p.d_model !== undefined ? 4 * d_model : base.ff_dim),
    d_llm,
    positions: p.positions,
    add_input_embeds: p.add_input_embeds,
  };
  if (r.mode === 'transformer' && r.d_model % r.heads !== 0) {
    throw new NodeBuildError(`${what}: d_model ${r.d_model} is not divisible by heads ${r.heads}`);
  }
  const emb = shapes.inputs_embeds?.[2];
  if (r.add_input_embeds && typeof emb === 'number' && emb !== d_llm) {
    throw new NodeBuildError(`${what}: input 'inputs_embeds' has width ${emb} but hidden_states has ${d_llm}`);
  }
  const pos = shapes.signal_positions?.[1];
  if (r.positions === 'input' && typeof pos === 'number' && pos !== r.num_signal_tokens) {
    throw new NodeBuildError(`${what}: input 'signal_positions' has ${pos} positions but num_signal_tokens is ${r.num_signal_tokens}`);
  }
  return r;
}

/** Output length: k in linear mode, Q in transformer mode. */
function outputTokens(r: SignalDims): number {
  return r.mode === 'linear' ? r.num_signal_tokens : r.num_queries;
}

function writeSignalProjector(s: Scope, r: ResolvedSignal): void {
  const { b } = s;
  const k = r.num_signal_tokens;
  const hidden = portInput(s, 'hidden_states', 'float32', ['batch_size', 'sequence_length', r.d_llm]);
  const embeds = r.add_input_embeds ? portInput(s, 'inputs_embeds', 'float32', ['batch_size', 'sequence_length', r.d_llm]) : null;

  // Pick the k signal positions: either the last k, or per-example indices [B,k] (negative counts from the end).
  let gather: (x: string) => string;
  if (r.positions === 'last') {
    gather = (x) => sliceAxis(b, x, 1, -k, Infinity);
  } else {
    const pos = portInput(s, 'signal_positions', 'int64', ['batch_size', k]);
    const index = b.op('Expand', [b.unsqueeze(pos, [2]), b.concat([b.shape(pos), b.ints([r.d_llm])], 0)]);
    gather = (x) => b.op('GatherElements', [x, index], { axis: 1 });
  }
  let signal = gather(hidden);
  if (embeds) signal = b.add(signal, gather(embeds));

  let out: string;
  if (r.mode === 'linear') {
    out = linear(s, signal, 'model', r.d_llm, r.d_cond);
  } else {
    const d = r.d_model;
    let mem = linear(s, signal, 'fc', r.d_llm, d);
    if (r.encoder_layers > 0) {
      for (let i = 0; i < r.encoder_layers; i++) {
        const p = `tfm.encoder.layers.${i}`;
        const n1 = layerNorm(s, mem, `${p}.norm1`, d, 1e-5);
        mem = b.add(mem, torchMha(s, n1, n1, `${p}.self_attn`, d, r.heads));
        mem = b.add(mem, reluFeedForward(s, layerNorm(s, mem, `${p}.norm2`, d, 1e-5), p, d, r.ff_dim));
      }
      mem = layerNorm(s, mem, 'tfm.encoder.norm', d, 1e-5);
    }
    // The learnable queries [1,Q,d] (randn init, as nn.Parameter(torch.randn(...))) broadcast over the batch.
    const queries = s.p.weight('query_embs', [1, r.num_queries, d], init.normal(1));
    let x = b.op('Expand', [queries, b.concat([dimOf(b, hidden, 0), b.ints([1, 1])], 0)]);
    for (let i = 0; i < r.decoder_layers; i++) {
      const p = `tfm.decoder.layers.${i}`;
      const n1 = layerNorm(s, x, `${p}.norm1`, d, 1e-5);
      x = b.add(x, torchMha(s, n1, n1, `${p}.self_attn`, d, r.heads));
      x = b.add(x, torchMha(s, layerNorm(s, x, `${p}.norm2`, d, 1e-5), mem, `${p}.multihead_attn`, d, r.heads));
      x = b.add(x, reluFeedForward(s, layerNorm(s, x, `${p}.norm3`, d, 1e-5), p, d, r.ff_dim));
    }
    x = layerNorm(s, x, 'tfm.decoder.norm', d, 1e-5);
    out = linear(s, x, 'model', d, r.d_cond);
  }
  portOutput(s, 'conditioning', out, ['batch_size', outputTokens(r), r.d_cond]);
}

/**
 * torch.nn.MultiheadAttention: packed in_proj_weight [3d, d] / in_proj_bias [3d] (xavier-uniform / zeros, as
 * nn.Transformer initialises them), then out_proj. `kv` = x for self-attention, the memory for cross-attention.
 */
function torchMha(s: Scope, x: string, kv: string, name: string, d: number, heads: number): string {
  const { b } = s;
  const weight = s.p.weight(`${name}.in_proj_weight`, [3 * d, d], init.uniform(Math.sqrt(6 / (d + 3 * d))));
  const bias = s.p.weight(`${name}.in_proj_bias`, [3 * d], init.zeros());
  const project = (input: string, part: number): string => {
    const w = sliceAxis(b, weight, 0, part * d, (part + 1) * d);
    return b.add(b.matmul(input, b.transpose(w, [1, 0])), sliceAxis(b, bias, 0, part * d, (part + 1) * d));
  };
  const attended = attentionCore(b, project(x, 0), project(kv, 1), project(kv, 2), { heads, headDim: d / heads });
  return linear(s, attended, `${name}.out_proj`, d, d, { weightInit: init.uniform(Math.sqrt(6 / (2 * d))), biasInit: init.zeros() });
}

function reluFeedForward(s: Scope, x: string, layer: string, d: number, ff: number): string {
  return linear(s, s.b.op('Relu', [linear(s, x, `${layer}.linear1`, d, ff)]), `${layer}.linear2`, ff, d);
}

/** Builds the fragment; with `meta: true` in the context the weights get no data (describe-only presets). */
export function buildSignalProjector(params: SignalTokenParams, ctx: BuildContext | MetaBuildContext): OnnxFragment {
  const s = openScope('outproj.signal_tokens', ctx);
  writeSignalProjector(s, resolveSignal(params, ctx.inputShapes, s.what));
  return closeScope(s);
}

/** Weight names/shapes and parameter count from a meta build (e.g. the 'nextgpt' preset): nothing is allocated. */
export function describeSignalProjector(params: SignalTokenParams, shapes: ResolvedShapes) {
  const frag = buildSignalProjector(params, { nodeId: 'describe', seed: 0, inputShapes: shapes, meta: true } as MetaBuildContext);
  const weights = frag.weights.map((name) => ({ name, shape: [...(frag.graph.initializers.get(name)?.dims ?? [])] }));
  return { weights, parameterCount: parameterCount(frag) };
}

function ports(p: SignalTokenParams): { inputs: PortSpec[]; outputs: PortSpec[] } {
  const inputs: PortSpec[] = [
    { name: 'hidden_states', kind: 'embeds', shape: ['B', 'T', 'D_llm'], doc: "The LLM's last hidden states." },
  ];
  if (p.positions === 'input') {
    inputs.push({ name: 'signal_positions', kind: 'tokens', shape: ['B', 'k'], doc: 'Positions (int64) of the k signal tokens in each sequence.' });
  }
  if (p.add_input_embeds) {
    inputs.push({ name: 'inputs_embeds', kind: 'embeds', shape: ['B', 'T', 'D_llm'], doc: "The LLM's input embeddings (added at the signal positions)." });
  }
  return { inputs, outputs: [{ name: 'conditioning', kind: 'embeds', shape: ['B', 'Q', 'D_cond'], doc: 'Conditioning tokens for a generator (encoder_hidden_states).' }] };
}

const defaultPorts = ports(SignalTokenParams.parse({}));

const signalDef: NodeTypeDef<typeof SignalTokenParams> = {
  info: {
    type: 'outproj.signal_tokens',
    typeVersion: 1,
    family: 'output-projector',
    title: 'Signal-token projector',
    aliases: ['signal_tokens', 'outproj'],
    inputs: defaultPorts.inputs,
    outputs: defaultPorts.outputs,
    doc: {
      summary:
        "Turns the LLM's hidden states at its special image tokens [IMG0..IMGk] into conditioning tokens for an image generator, so the LLM can ask for a picture.",
      usedBy: ['NExT-GPT (4 tokens → 77×768 for SD 1.5)', 'MiniGPT-5 (8 tokens → 77×1024 for SD 2.1)'],
      formula: 'linear: c = W·h_sig + b;  transformer: c = W_out · Transformer(src = W_fc·h_sig, tgt = queries)',
      details:
        'Trained to match the frozen text encoder of the generator (l2 per token) and/or through the diffusion loss; the LLM stays frozen.',
    },
  },
  params: SignalTokenParams,
  paramDocs,
  ports,
  inputShapes(p) {
    const k = p.num_signal_tokens ?? SIGNAL_PRESETS[p.preset].num_signal_tokens;
    const width: string | number = p.d_llm === 'auto' ? 'D_llm' : p.d_llm;
    const shapes: ResolvedShapes = { hidden_states: ['B', 'T', width] };
    if (p.positions === 'input') shapes.signal_positions = ['B', k];
    if (p.add_input_embeds) shapes.inputs_embeds = ['B', 'T', width];
    return shapes;
  },
  outputShapes(p, inputs) {
    const base = SIGNAL_PRESETS[p.preset];
    const mode = p.mode ?? base.mode;
    const tokens = mode === 'linear' ? (p.num_signal_tokens ?? base.num_signal_tokens) : (p.num_queries ?? base.num_queries);
    let dCond: string | number = p.d_cond === 'auto' ? base.d_cond : p.d_cond;
    const down = inputs[downstreamKey('conditioning')]?.[2];
    if (p.d_cond === 'auto' && typeof down === 'number') dCond = down;
    return { conditioning: [inputs.hidden_states?.[0] ?? 'B', tokens, dCond] };
  },
  build: buildSignalProjector,
};

export const nodeTypes: NodeTypeDef[] = [signalDef as unknown as NodeTypeDef];
