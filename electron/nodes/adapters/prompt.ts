// Prompt tuning (Lester et al. 2021) and P-tuning (Liu et al. 2021): P virtual token embeddings prepended to
// `inputs_embeds`, as peft does for decoder-only models:
//   inputs_embeds' = [prompts; inputs_embeds]   attention_mask' = [1…1; attention_mask]   position_ids' = [0…P−1; position_ids + P]
// Prompt tuning learns the P×D table directly (peft `prompt_encoder.default.embedding.weight`); P-tuning produces
// it with a prompt encoder from an embedding table: an MLP (Linear-ReLU-Linear-ReLU-Linear, peft `mlp_head.0/2/4`)
// or a bidirectional LSTM (peft `lstm_head`, unrolled here with MatMul/Sigmoid/Tanh since P is small) followed by
// Linear-ReLU-Linear.
// With a KV cache (an input `past_key_values.0.key`) the embeddings are prepended only when the past is empty, while
// the mask always gets the P ones (the cache holds the virtual tokens): the same convention as peft's generate.
// Outputs over the sequence (same symbolic length as inputs_embeds, e.g. logits) drop the P virtual positions, so
// the node's ports keep their shapes; KV-cache outputs keep them.

import { z } from 'zod';
import { GraphBuilder } from '../../onnx/builder.js';
import { type Tensor, tensorFromNumbers, topoSort } from '../../onnx/ir.js';
import { Rng } from '../../engine/rng.js';
import type { OnnxFragment } from '../types.js';
import { AdapterError, type AdapterResult, type ApplyOptions, addWeight, batchDim, checkOpset, cloneFragment, floatData, intercept, parseConfig, replaceReads } from './common.js';

const ioFields = {
  num_virtual_tokens: z.number().int().positive().default(10),
  /** Graph input holding the token embeddings [B, S, D]. */
  embeds_input: z.string().min(1).default('inputs_embeds'),
  /** Padding-mask input to extend (skipped when the graph has none). */
  mask_input: z.string().min(1).default('attention_mask'),
  /** Position-id input to shift (skipped when the graph has none). */
  position_input: z.string().min(1).default('position_ids'),
  /** Drop the virtual positions from sequence outputs (logits, hidden states). */
  strip_virtual_tokens: z.boolean().default(true),
};

export const promptConfigSchema = z.strictObject({
  ...ioFields,
  /** peft PromptTuningInit: 'random' N(0,1), 'text' (embeddings of init text), 'sample_vocab' (random vocabulary rows). */
  prompt_tuning_init: z.enum(['random', 'text', 'sample_vocab']).default('random'),
  prompt_tuning_init_text: z.string().optional(),
  /** Word-embedding initializer of the fragment to copy rows from (default: one named like a word embedding). */
  embedding_weight: z.string().optional(),
});
export type PromptConfig = z.output<typeof promptConfigSchema>;

export const ptuningConfigSchema = z.strictObject({
  ...ioFields,
  encoder_reparameterization_type: z.enum(['MLP', 'LSTM']).default('MLP'),
  /** Hidden width of the prompt encoder (default: D). */
  encoder_hidden_size: z.number().int().positive().optional(),
  /** LSTM layers (the MLP always has 3 linear layers, as peft). */
  encoder_num_layers: z.number().int().positive().default(2),
  /** Dropout between LSTM layers (training graphs only). */
  encoder_dropout: z.number().min(0).max(0.99).default(0),
});
export type PtuningConfig = z.output<typeof ptuningConfigSchema>;

export const PROMPT_CONFIG_DOCS: Record<string, string> = {
  num_virtual_tokens: 'P: number of virtual tokens prepended to the sequence.',
  embeds_input: 'Graph input with the token embeddings [B,S,D].',
  mask_input: 'Padding mask input that gets P ones prepended.',
  position_input: 'Position ids input: real tokens are shifted by P.',
  strip_virtual_tokens: 'Remove the virtual positions from sequence outputs so the ports keep their shapes.',
  prompt_tuning_init: "'random', 'text' (embeddings of prompt_tuning_init_text) or 'sample_vocab' (random vocabulary rows).",
  prompt_tuning_init_text: "Text whose token embeddings initialise the prompt ('text' init), tiled or cut to P tokens.",
  embedding_weight: 'Word-embedding initializer to copy from (default: found by name, or passed by the caller).',
  encoder_reparameterization_type: "P-tuning prompt encoder: 'MLP' or a bidirectional 'LSTM'.",
  encoder_hidden_size: 'Hidden width of the prompt encoder (default D).',
  encoder_num_layers: 'LSTM layers.',
  encoder_dropout: 'Dropout between LSTM layers (training only).',
};

export interface PromptInfo {
  method: 'prompt' | 'ptuning';
  config: PromptConfig | PtuningConfig;
  /** Value holding the [P, D] virtual token embeddings (what peft saves as prompt_embeddings). */
  table: string;
  tokenDim: number;
  strippedOutputs: string[];
}

function embedsShape(fragment: OnnxFragment, input: string, what: string): { seqDim: string | number | null; width: number } {
  const vi = fragment.graph.inputs.find((v) => v.name === input);
  if (!vi) {
    const names = fragment.graph.inputs.map((v) => v.name).join(', ');
    throw new AdapterError(`${what}: the graph has no input '${input}' (config field 'embeds_input'); its inputs are ${names}`);
  }
  const width = vi.shape?.[2];
  if (!vi.shape || vi.shape.length !== 3 || typeof width !== 'number') {
    throw new AdapterError(`${what}: input '${input}' must be [B, S, D] with a known D, got [${vi.shape?.join(',') ?? '?'}]`);
  }
  return { seqDim: vi.shape[1], width };
}

/** Rewires the graph to prepend the [P, D] value `table`. */
function prependVirtualTokens(fragment: OnnxFragment, table: string, cfg: z.output<z.ZodObject<typeof ioFields>>, what: string): string[] {
  const g = fragment.graph;
  const b = new GraphBuilder(g);
  const P = cfg.num_virtual_tokens;
  const { seqDim, width } = embedsShape(fragment, cfg.embeds_input, what);
  const past = g.inputs.find((v) => v.name.startsWith('past_key_values.'));
  // n = P at prefill (empty past), 0 when decoding with a cache that already holds the virtual tokens.
  let n: string;
  let rows = table;
  if (past) {
    const pastLen = b.op('Slice', [b.shape(past.name), b.ints([2]), b.ints([3]), b.ints([0])]);
    n = b.op('Where', [b.op('Equal', [pastLen, b.ints([0])]), b.ints([P]), b.ints([0])]);
    rows = b.op('Slice', [table, b.ints([0]), n, b.ints([0])]);
  } else {
    n = b.ints([P]);
  }
  const inEmbeds = cfg.embeds_input;
  const batch = batchDim(b, inEmbeds);
  const expanded = b.op('Expand', [b.unsqueeze(rows, [0]), b.concat([batch, n, b.ints([width])], 0)]);
  const embeds = b.concat([expanded, inEmbeds], 1);
  // Every reader of the original embeddings now reads the extended ones (except the nodes that build them).
  rewireAllBut(g.nodes, inEmbeds, embeds, ownership(g.nodes, embeds));
  const mask = g.inputs.find((v) => v.name === cfg.mask_input);
  if (mask) {
    const ones = b.op('ConstantOfShape', [b.concat([batchDim(b, mask.name), b.ints([P])], 0)], { value: tensorFromNumbers(mask.dtype, [1], [1]) });
    const extended = b.concat([ones, mask.name], 1);
    rewireAllBut(g.nodes, mask.name, extended, ownership(g.nodes, extended));
  }
  const pos = g.inputs.find((v) => v.name === cfg.position_input);
  if (pos) {
    const zero = b.scalar(0, pos.dtype);
    const range = b.op('Range', [zero, b.cast(b.squeeze(n, [0]), pos.dtype), b.scalar(1, pos.dtype)]);
    const virtualPos = b.op('Expand', [b.unsqueeze(range, [0]), b.concat([batchDim(b, pos.name), n], 0)]);
    const shifted = b.add(pos.name, b.scalar(P, pos.dtype));
    const extended = b.concat([virtualPos, shifted], 1);
    rewireAllBut(g.nodes, pos.name, extended, ownership(g.nodes, extended));
  }
  const stripped: string[] = [];
  if (cfg.strip_virtual_tokens && seqDim !== null) {
    for (const o of g.outputs) {
      if (o.shape?.[1] !== seqDim || o.name.startsWith('present')) continue;
      const full = intercept(b, o.name);
      // Nodes inside the graph (e.g. the LM head reading last_hidden_state) keep reading the full sequence.
      replaceReads(g, o.name, full);
      b.op('Slice', [full, n, b.ints([Number.MAX_SAFE_INTEGER]), b.ints([1])], {}, { outputs: [o.name] });
      stripped.push(o.name);
    }
  }
  g.nodes = topoSort(g);
  return stripped;
}

/** Nodes that compute `value` from the original input (they must keep reading the original). */
function ownership(nodes: OnnxFragment['graph']['nodes'], value: string): Set<string> {
  const byOutput = new Map<string, (typeof nodes)[number]>();
  for (const n of nodes) for (const o of n.outputs) byOutput.set(o, n);
  const own = new Set<string>();
  const stack = [value];
  while (stack.length) {
    const node = byOutput.get(stack.pop()!);
    if (!node || own.has(node.name)) continue;
    own.add(node.name);
    stack.push(...node.inputs.filter(Boolean));
  }
  return own;
}

function rewireAllBut(nodes: OnnxFragment['graph']['nodes'], from: string, to: string, keep: Set<string>): void {
  for (const node of nodes) {
    if (keep.has(node.name)) continue;
    node.inputs = node.inputs.map((i) => (i === from ? to : i));
    // A merged decoder's If branches read the inputs from the outer scope: rewire their reads too.
    for (const a of Object.values(node.attrs)) {
      if (a.type === 'graph') rewireAllBut(a.value.nodes, from, to, keep);
      if (a.type === 'graphs') for (const g of a.value) rewireAllBut(g.nodes, from, to, keep);
    }
  }
}

function findEmbeddingMatrix(fragment: OnnxFragment, cfg: PromptConfig, options: ApplyOptions, what: string): Tensor {
  if (options.embeddingMatrix) return options.embeddingMatrix;
  const g = fragment.graph;
  const name = cfg.embedding_weight ?? [...g.initializers.keys()].find((k) => /(^|\.)(embed_tokens|wte|word_embeddings)\.weight$/.test(k));
  const t = name ? g.initializers.get(name) : undefined;
  if (!t || t.dims.length !== 2) {
    throw new AdapterError(
      `${what}: init '${cfg.prompt_tuning_init}' needs the word-embedding matrix: pass it, or name it in config field 'embedding_weight'` +
        (name ? ` ('${name}' is not a 2-D initializer)` : ''),
    );
  }
  return t;
}

function copyRows(matrix: Tensor, ids: number[], width: number, what: string): Float32Array {
  const [V, D] = matrix.dims;
  if (D !== width) throw new AdapterError(`${what}: the embedding matrix is [${V},${D}] but the model width is ${width}`);
  const data = floatData(matrix, `${what}: embedding matrix`);
  const out = new Float32Array(ids.length * D);
  ids.forEach((id, r) => {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new AdapterError(`${what}: token id ${id} is outside the vocabulary of ${V}`);
    out.set(data.subarray(id * D, (id + 1) * D), r * D);
  });
  return out;
}

export function applyPrompt(fragment: OnnxFragment, config: unknown, seed: number, options: ApplyOptions = {}): AdapterResult<PromptInfo> {
  const what = options.what ?? 'prompt adapter';
  const cfg = parseConfig(promptConfigSchema, config, what);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const { width } = embedsShape(out, cfg.embeds_input, what);
  const P = cfg.num_virtual_tokens;
  const b = new GraphBuilder(out.graph);
  let init: Parameters<typeof addWeight>[3] = { kind: 'normal', std: 1 };
  if (cfg.prompt_tuning_init === 'text') {
    if (!cfg.prompt_tuning_init_text) throw new AdapterError(`${what}: init 'text' needs config field 'prompt_tuning_init_text'`);
    if (!options.tokenize) throw new AdapterError(`${what}: init 'text' needs a tokenizer (ApplyOptions.tokenize)`);
    const ids = options.tokenize(cfg.prompt_tuning_init_text);
    if (ids.length === 0) throw new AdapterError(`${what}: prompt_tuning_init_text tokenises to nothing`);
    // peft: cut to P tokens, or repeat the text until P tokens are filled.
    const tiled = Array.from({ length: P }, (_, i) => ids[i % ids.length]);
    init = { kind: 'given', data: copyRows(findEmbeddingMatrix(out, cfg, options, what), tiled, width, what) };
  } else if (cfg.prompt_tuning_init === 'sample_vocab') {
    const matrix = findEmbeddingMatrix(out, cfg, options, what);
    const rng = new Rng(seed).fork('prompt_tuning_init.sample_vocab');
    const ids = Array.from({ length: P }, () => rng.int(matrix.dims[0]));
    init = { kind: 'given', data: copyRows(matrix, ids, width, what) };
  }
  const table = addWeight(b, 'prompt_encoder.default.embedding.weight', [P, width], init, seed, options, what);
  const stripped = prependVirtualTokens(out, table, cfg, what);
  out.weights.push(table);
  return { fragment: out, trainable: [table], info: { method: 'prompt', config: cfg, table, tokenDim: width, strippedOutputs: stripped } };
}

/** One LSTM direction over the rows of x [P, in] (PyTorch gate order i, f, g, o); returns [P, h]. */
function lstmDirection(b: GraphBuilder, x: string, P: number, h: number, w: { ih: string; hh: string; bih: string; bhh: string }, reverse: boolean): string {
  const projected = b.add(b.add(b.matmul(x, b.transpose(w.ih, [1, 0])), w.bih), w.bhh); // [P, 4h]
  const whhT = b.transpose(w.hh, [1, 0]);
  let hPrev = b.constant('float32', [1, h], new Array(h).fill(0), 'lstm_h0');
  let cPrev = hPrev;
  const outs: string[] = new Array(P);
  for (let s = 0; s < P; s++) {
    const t = reverse ? P - 1 - s : s;
    const gates = b.add(b.op('Slice', [projected, b.ints([t]), b.ints([t + 1]), b.ints([0])]), b.matmul(hPrev, whhT));
    const [i, f, g, o] = b.opN('Split', [gates, b.ints([h, h, h, h])], { axis: 1 }, 4);
    const c = b.add(b.mul(b.op('Sigmoid', [f]), cPrev), b.mul(b.op('Sigmoid', [i]), b.op('Tanh', [g])));
    const hNew = b.mul(b.op('Sigmoid', [o]), b.op('Tanh', [c]));
    outs[t] = hNew;
    hPrev = hNew;
    cPrev = c;
  }
  return b.concat(outs, 0);
}

export function applyPtuning(fragment: OnnxFragment, config: unknown, seed: number, options: ApplyOptions = {}): AdapterResult<PromptInfo> {
  const what = options.what ?? 'ptuning adapter';
  const cfg = parseConfig(ptuningConfigSchema, config, what);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const { width: D } = embedsShape(out, cfg.embeds_input, what);
  const P = cfg.num_virtual_tokens;
  const H = cfg.encoder_hidden_size ?? D;
  const b = new GraphBuilder(out.graph);
  const pe = 'prompt_encoder.default';
  const trainable: string[] = [];
  const weight = (name: string, dims: number[], init: Parameters<typeof addWeight>[3]) => {
    const n = addWeight(b, `${pe}.${name}`, dims, init, seed, options, what);
    trainable.push(n);
    return n;
  };
  const linear = (x: string, name: string, inF: number, outF: number) => {
    const w = weight(`${name}.weight`, [outF, inF], { kind: 'kaiming', fanIn: inF });
    const bias = weight(`${name}.bias`, [outF], { kind: 'uniform', bound: 1 / Math.sqrt(inF) });
    return b.add(b.matmul(x, b.transpose(w, [1, 0])), bias);
  };
  const emb = weight('embedding.weight', [P, D], { kind: 'normal', std: 1 });
  let table: string;
  if (cfg.encoder_reparameterization_type === 'MLP') {
    const h1 = b.op('Relu', [linear(emb, 'mlp_head.0', D, H)]);
    const h2 = b.op('Relu', [linear(h1, 'mlp_head.2', H, H)]);
    table = linear(h2, 'mlp_head.4', H, D);
  } else {
    // PyTorch LSTM init: every weight and bias U(±1/√h).
    const u = { kind: 'uniform', bound: 1 / Math.sqrt(H) } as const;
    let x = emb;
    for (let l = 0; l < cfg.encoder_num_layers; l++) {
      const inF = l === 0 ? D : 2 * H;
      const dir = (suffix: string) => ({
        ih: weight(`lstm_head.weight_ih_l${l}${suffix}`, [4 * H, inF], u),
        hh: weight(`lstm_head.weight_hh_l${l}${suffix}`, [4 * H, H], u),
        bih: weight(`lstm_head.bias_ih_l${l}${suffix}`, [4 * H], u),
        bhh: weight(`lstm_head.bias_hh_l${l}${suffix}`, [4 * H], u),
      });
      const fwd = dir('');
      const bwd = dir('_reverse');
      x = b.concat([lstmDirection(b, x, P, H, fwd, false), lstmDirection(b, x, P, H, bwd, true)], 1);
      if (options.training && cfg.encoder_dropout > 0 && l + 1 < cfg.encoder_num_layers) {
        [x] = b.opN('Dropout', [x, b.scalar(cfg.encoder_dropout), b.constant('bool', [], [1], 'training_mode')], {}, 2);
      }
    }
    table = linear(b.op('Relu', [linear(x, 'mlp_head.0', 2 * H, 2 * H)]), 'mlp_head.2', 2 * H, D);
  }
  const stripped = prependVirtualTokens(out, table, cfg, what);
  out.weights.push(...trainable);
  return { fragment: out, trainable, info: { method: 'ptuning', config: cfg, table, tokenDim: D, strippedOutputs: stripped } };
}
