// Input projectors: map vision tokens into the LLM's embedding space. All take `vision_features` [B, N, D_in] and
// emit `image_features` [B, N_img, D_llm]; D_in and D_out are 'auto' by default (from the upstream encoder and the
// downstream LLM). Weight names follow the reference implementations (HF LLaVA, LAVIS Q-Former, OpenFlamingo,
// mPLUG-Owl) so real checkpoints load by name.

import { z } from 'zod';
import {
  type Scope,
  ACTIVATIONS,
  MASK_VALUE,
  NodeBuildError,
  activation,
  attention,
  attentionCore,
  bertAttention,
  bertFeedForward,
  closeScope,
  dimOf,
  dimScalar,
  embedding,
  expandToBatch,
  firstRows,
  init,
  isConnected,
  knownWidth,
  layerNorm,
  linear,
  openScope,
  portInput,
  portOutput,
  resolveWidth,
  sliceAxis,
  swiglu,
  withOverrides,
} from './blocks.js';
import { BUILTIN_VOCAB_SIZE } from './llms.js';
import { type BuildContext, type NodeTypeDef, type OnnxFragment, type PortSpec, type ResolvedShapes, downstreamKey } from './types.js';

const BATCH = 'batch_size';
const posInt = () => z.number().int().positive().optional();
const autoWidth = () => z.union([z.literal('auto'), z.number().int().positive()]).default('auto');

const VISION_IN: PortSpec = {
  name: 'vision_features',
  kind: 'embeds',
  shape: ['B', 'N', 'D_in'],
  doc: 'Vision tokens from an encoder (its vision_features or last_hidden_state).',
};
const IMAGE_OUT: PortSpec = {
  name: 'image_features',
  kind: 'embeds',
  shape: ['B', 'N_img', 'D_llm'],
  doc: 'Image tokens in the LLM embedding space, ready to merge into inputs_embeds.',
};

const D_IN_DOC = "Width of the incoming vision tokens; 'auto' takes it from the connected encoder.";
const D_OUT_DOC = "Width of image_features; 'auto' takes the LLM's embedding width from the connected consumer.";

/** D_in and D_out for a build (strict: unknown 'auto' widths are an error naming the node and port). */
function widths(what: string, p: { d_in: number | 'auto'; d_out: number | 'auto' }, inputs: ResolvedShapes) {
  const dIn = resolveWidth(p.d_in, inputs.vision_features, { what, param: 'd_in', source: "input 'vision_features'", symbol: 'D_in', strict: true });
  const dOut = resolveWidth(p.d_out, inputs[downstreamKey('image_features')], {
    what,
    param: 'd_out',
    source: "the consumer of 'image_features'",
    symbol: 'D_llm',
    strict: true,
  });
  return { dIn: dIn as number, dOut: dOut as number };
}

/** D_out for shape inference (symbolic when unknown). */
function outWidth(p: { d_out: number | 'auto' }, inputs: ResolvedShapes): number | string {
  return resolveWidth(p.d_out, inputs[downstreamKey('image_features')], { what: '', param: 'd_out', source: '', symbol: 'D_llm', strict: false });
}

/** A numeric d_in is what the node expects on vision_features (checked against the upstream encoder). */
function expectedVisionWidth(p: { d_in: number | 'auto' }): ResolvedShapes {
  return p.d_in === 'auto' ? {} : { vision_features: ['B', 'N', p.d_in] };
}

/** Token count of the incoming features, numeric when known. */
function tokenCount(inputs: ResolvedShapes): number | string {
  const n = inputs.vision_features?.[1];
  return n ?? 'N';
}

function visionInput(s: Scope, ctx: BuildContext, dIn: number): string {
  const n = ctx.inputShapes.vision_features?.[1];
  return portInput(s, 'vision_features', 'float32', [BATCH, typeof n === 'number' ? n : 'num_tokens', dIn]);
}

// ---------------------------------------------------------------------------------------------------------------
// projector.linear

const linearParams = z.object({
  d_in: autoWidth(),
  d_out: autoWidth(),
  merge_factor: z.number().int().positive().default(1),
  bias: z.boolean().default(true),
});
type LinearParams = z.infer<typeof linearParams>;

function buildLinear(p: LinearParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('projector.linear', ctx);
  const { dIn, dOut } = widths(s.what, p, ctx.inputShapes);
  const n = ctx.inputShapes.vision_features?.[1];
  if (typeof n === 'number' && n % p.merge_factor !== 0) {
    throw new NodeBuildError(`${s.what}: ${n} tokens cannot be merged in groups of merge_factor ${p.merge_factor}`);
  }
  let x = visionInput(s, ctx, dIn);
  // MiniGPT-v2: concatenate each run of `merge_factor` adjacent tokens along the width.
  if (p.merge_factor > 1) x = s.b.reshape(x, [0, -1, dIn * p.merge_factor]);
  const y = linear(s, x, 'llama_proj', dIn * p.merge_factor, dOut, { bias: p.bias });
  portOutput(s, 'image_features', y, [BATCH, typeof n === 'number' ? n / p.merge_factor : 'num_image_tokens', dOut]);
  return closeScope(s);
}

const linearProjector: NodeTypeDef<typeof linearParams> = {
  info: {
    type: 'projector.linear',
    typeVersion: 1,
    family: 'input-projector',
    title: 'Linear projector',
    aliases: ['linear'],
    inputs: [VISION_IN],
    outputs: [IMAGE_OUT],
    doc: {
      summary:
        'One Linear layer from the vision width to the LLM width. With merge_factor m, each run of m adjacent ' +
        'tokens is concatenated first (N tokens of width D → N/m tokens of width m·D), as in MiniGPT-v2.',
      usedBy: ['MiniGPT-4 (after the frozen Q-Former, 32 tokens)', 'MiniGPT-v2 (merge 4)', 'LLaVA v1', 'NExT-GPT'],
      formula: 'image_features = merge_m(x) · Wᵀ + b',
      details: 'Weights llama_proj.{weight,bias} (MiniGPT-4 / NExT-GPT names); init nn.Linear default U(±1/√fan_in).',
    },
  },
  params: linearParams,
  paramDocs: {
    d_in: D_IN_DOC,
    d_out: D_OUT_DOC,
    merge_factor: 'Concatenate this many adjacent tokens before projecting (1 = off; MiniGPT-v2 uses 4). Must divide N.',
    bias: 'Learn a bias.',
  },
  inputShapes: expectedVisionWidth,
  outputShapes(p, inputs) {
    const n = tokenCount(inputs);
    return { image_features: ['B', typeof n === 'number' ? n / p.merge_factor : `N/${p.merge_factor}`, outWidth(p, inputs)] };
  },
  build: buildLinear,
};

// ---------------------------------------------------------------------------------------------------------------
// projector.mlp

const mlpParams = z.object({
  d_in: autoWidth(),
  d_out: autoWidth(),
  depth: z.number().int().min(1).max(16).default(2),
  act: z.enum(['gelu', 'quick_gelu', 'gelu_new', 'relu', 'silu']).default('gelu'),
  bias: z.boolean().default(true),
});
type MlpParams = z.infer<typeof mlpParams>;

function buildMlp(p: MlpParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('projector.mlp', ctx);
  const { dIn, dOut } = widths(s.what, p, ctx.inputShapes);
  let x = visionInput(s, ctx, dIn);
  for (let i = 1; i <= p.depth; i++) {
    if (i > 1) x = activation(s.b, x, p.act);
    x = linear(s, x, `linear_${i}`, i === 1 ? dIn : dOut, dOut, { bias: p.bias });
  }
  const n = ctx.inputShapes.vision_features?.[1];
  portOutput(s, 'image_features', x, [BATCH, typeof n === 'number' ? n : 'num_tokens', dOut]);
  return closeScope(s);
}

const mlpProjector: NodeTypeDef<typeof mlpParams> = {
  info: {
    type: 'projector.mlp',
    typeVersion: 1,
    family: 'input-projector',
    title: 'MLP projector',
    aliases: ['mlp'],
    inputs: [VISION_IN],
    outputs: [IMAGE_OUT],
    doc: {
      summary:
        'LLaVA-1.5 projector: Linear(D_in → D_llm), then (GELU, Linear(D_llm → D_llm)) repeated; depth 2 is ' +
        "LLaVA's mlp2x_gelu. Keeps one image token per vision token.",
      usedBy: ['LLaVA-1.5 (576 tokens from CLIP-L/14-336, layer −2)', 'LLaVA-NeXT', 'many open VLMs'],
      formula: 'image_features = W₂·GELU(W₁x + b₁) + b₂   (depth k: k Linears, GELU between)',
      details: 'Weights linear_1 … linear_k (HF LlavaMultiModalProjector names); init nn.Linear default.',
    },
  },
  params: mlpParams,
  paramDocs: {
    d_in: D_IN_DOC,
    d_out: D_OUT_DOC,
    depth: 'Number of Linear layers (mlp{k}x_gelu); 1 is a plain linear projector.',
    act: 'Activation between the Linears (gelu in LLaVA).',
    bias: 'Learn biases.',
  },
  inputShapes: expectedVisionWidth,
  outputShapes(p, inputs) {
    return { image_features: ['B', tokenCount(inputs), outWidth(p, inputs)] };
  },
  build: buildMlp,
};

// ---------------------------------------------------------------------------------------------------------------
// projector.qformer

const QFORMER_PRESETS = {
  tiny: {
    num_query_tokens: 8,
    hidden_size: 64,
    num_layers: 2,
    num_heads: 4,
    intermediate_size: 256,
    cross_attention_frequency: 2,
    vocab_size: BUILTIN_VOCAB_SIZE,
    max_positions: 128,
    encoder_width: 64,
  },
  blip2: {
    num_query_tokens: 32,
    hidden_size: 768,
    num_layers: 12,
    num_heads: 12,
    intermediate_size: 3072,
    cross_attention_frequency: 2,
    vocab_size: 30523,
    max_positions: 512,
    encoder_width: 1408,
  },
};
type QFormerDims = (typeof QFORMER_PRESETS)['tiny'];

const MASK_MODES = ['itc', 'itm', 'itg', 'instruct'] as const;
type MaskMode = (typeof MASK_MODES)[number];

const qformerParams = z.object({
  preset: z.enum(['tiny', 'blip2']).default('tiny'),
  num_query_tokens: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  cross_attention_frequency: posInt(),
  vocab_size: posInt(),
  max_positions: posInt(),
  d_in: autoWidth(),
  d_out: autoWidth(),
  mask_mode: z.enum(MASK_MODES).default('itm'),
  eps: z.number().positive().default(1e-12),
  act: z.enum(ACTIVATIONS).default('gelu'),
});
type QFormerParams = z.infer<typeof qformerParams>;

function qformerDims(p: QFormerParams): QFormerDims {
  return withOverrides(QFORMER_PRESETS[p.preset], p);
}

/** Resolved projector.qformer params (preset + overrides, defaults filled), for the Hugging Face export. */
export function qformerDimsOf(params: unknown): QFormerParams & QFormerDims {
  const p = qformerParams.parse(params);
  return { ...p, ...qformerDims(p) };
}

/** The text input ports a mask mode reads: InstructBLIP feeds the instruction as qformer_input_ids. */
function textPorts(mode: MaskMode): { ids: string; mask: string; other: string } {
  return mode === 'instruct'
    ? { ids: 'qformer_input_ids', mask: 'qformer_attention_mask', other: 'input_ids' }
    : { ids: 'input_ids', mask: 'attention_mask', other: 'qformer_input_ids' };
}

/**
 * Self-attention mask over [queries; text] (S = Q + T), additive [B|1, 1, S, S]:
 * itc: queries and text never see each other; itm / instruct: bidirectional; itg: queries see queries only, text
 * sees all queries and earlier text. Padded text positions are never attended to.
 */
function qformerSelfMask(s: Scope, x: string, q: number, mode: MaskMode, textMask: string | undefined): string | undefined {
  const { b } = s;
  let allowed: string | undefined;
  if (mode === 'itc' || mode === 'itg') {
    const positions = b.op('Range', [b.scalar(0, 'int64'), dimScalar(b, x, 1), b.scalar(1, 'int64')]);
    const rows = b.unsqueeze(positions, [1]);
    const cols = b.unsqueeze(positions, [0]);
    const qs = b.scalar(q, 'int64');
    const colIsQuery = b.op('Less', [cols, qs]);
    const pattern =
      mode === 'itc'
        ? b.op('Not', [b.op('Xor', [b.op('Less', [rows, qs]), colIsQuery])])
        : b.op('Or', [colIsQuery, b.op('LessOrEqual', [cols, rows])]);
    allowed = b.unsqueeze(b.cast(pattern, 'float32'), [0, 1]);
  }
  if (textMask) {
    const queryKeys = b.op('Expand', [b.constant('float32', [1, q], new Float32Array(q).fill(1), 'query_keys'), b.concat([dimOf(b, textMask, 0), b.ints([q])], 0)]);
    const keys = b.unsqueeze(b.concat([queryKeys, b.cast(textMask, 'float32')], 1), [1, 2]);
    allowed = allowed ? b.mul(allowed, keys) : keys;
  }
  return allowed && b.mul(b.sub(b.scalar(1), allowed), b.scalar(MASK_VALUE));
}

function buildQFormer(p: QFormerParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('projector.qformer', ctx);
  const d = qformerDims(p);
  const D = d.hidden_size;
  const Q = d.num_query_tokens;
  if (D % d.num_heads !== 0) throw new NodeBuildError(`${s.what}: hidden_size ${D} is not divisible by num_heads ${d.num_heads}`);
  // The preset names the encoder width (1408 for BLIP-2) for when nothing is connected yet.
  const encWidth = (p.d_in === 'auto' ? knownWidth(ctx.inputShapes.vision_features) : p.d_in) ?? d.encoder_width;
  const { dOut } = widths(s.what, { d_in: encWidth, d_out: p.d_out }, ctx.inputShapes);
  const ports = textPorts(p.mask_mode);
  if (isConnected(ctx.inputShapes, ports.other)) {
    throw new NodeBuildError(
      `${s.what}: input '${ports.other}' is connected but mask_mode '${p.mask_mode}' reads '${ports.ids}'` +
        ` (instruct uses qformer_input_ids / qformer_attention_mask; itc, itm and itg use input_ids / attention_mask)`,
    );
  }
  const hasText = isConnected(ctx.inputShapes, ports.ids);
  if (!hasText && isConnected(ctx.inputShapes, ports.mask)) {
    throw new NodeBuildError(`${s.what}: '${ports.mask}' is connected without '${ports.ids}'`);
  }
  const { b } = s;

  const image = visionInput(s, ctx, encWidth);
  const queries = expandToBatch(b, s.p.weight('query_tokens', [1, Q, D], init.normal(0.02)), image, Q, D);
  let x = queries;
  let textMask: string | undefined;
  if (hasText) {
    const ids = portInput(s, ports.ids, 'int64', [BATCH, 'sequence_length']);
    if (isConnected(ctx.inputShapes, ports.mask)) textMask = portInput(s, ports.mask, 'int64', [BATCH, 'sequence_length']);
    const words = embedding(s, ids, 'embeddings.word_embeddings', d.vocab_size, D);
    const posTable = s.p.weight('embeddings.position_embeddings.weight', [d.max_positions, D], init.normal(0.02));
    x = b.concat([queries, b.add(words, firstRows(b, posTable, ids, 1))], 1);
  }
  x = layerNorm(s, x, 'embeddings.LayerNorm', D, p.eps);
  const selfMask = hasText ? qformerSelfMask(s, x, Q, p.mask_mode, textMask) : undefined;

  for (let i = 0; i < d.num_layers; i++) {
    const l = `encoder.layer.${i}`;
    x = bertAttention(s, x, x, `${l}.attention`, { dim: D, heads: d.num_heads, eps: p.eps, mask: selfMask });
    let qRows = hasText ? sliceAxis(b, x, 1, 0, Q) : x;
    if (i % d.cross_attention_frequency === 0) {
      qRows = bertAttention(s, qRows, image, `${l}.crossattention`, { dim: D, heads: d.num_heads, eps: p.eps, kvDim: encWidth });
    }
    // The query FFN starts as a copy of the text FFN (LAVIS loads both from BERT): same random stream.
    const ffn = { dim: D, hidden: d.intermediate_size, eps: p.eps, act: p.act };
    qRows = bertFeedForward(s, qRows, { intermediate: `${l}.intermediate_query`, output: `${l}.output_query` }, {
      ...ffn,
      streams: { intermediate: `${l}.intermediate`, output: `${l}.output` },
    });
    if (hasText) {
      const tRows = bertFeedForward(s, sliceAxis(b, x, 1, Q, Infinity), { intermediate: `${l}.intermediate`, output: `${l}.output` }, ffn);
      x = b.concat([qRows, tRows], 1);
    } else {
      x = qRows;
    }
  }

  const queryOut = hasText ? sliceAxis(b, x, 1, 0, Q) : x;
  const projected = linear(s, queryOut, 'language_projection', D, dOut);
  portOutput(s, 'image_features', projected, [BATCH, Q, dOut]);
  portOutput(s, 'query_output', queryOut, [BATCH, Q, D]);
  if (hasText) portOutput(s, 'text_output', sliceAxis(b, x, 1, Q, Infinity), [BATCH, 'sequence_length', D]);
  return closeScope(s);
}

const qformer: NodeTypeDef<typeof qformerParams> = {
  info: {
    type: 'projector.qformer',
    typeVersion: 1,
    family: 'input-projector',
    title: 'Q-Former',
    aliases: ['qformer'],
    inputs: [
      { ...VISION_IN, doc: 'Image embeddings from the vision encoder (BLIP-2: all 257 EVA tokens after ln_vision).' },
      { name: 'input_ids', kind: 'tokens', shape: ['B', 'T'], optional: true, doc: 'Text for the ITC / ITM / ITG branch.' },
      { name: 'attention_mask', kind: 'mask', shape: ['B', 'T'], optional: true, doc: 'Padding mask of input_ids.' },
      { name: 'qformer_input_ids', kind: 'tokens', shape: ['B', 'T'], optional: true, doc: 'InstructBLIP instruction (mask_mode instruct).' },
      { name: 'qformer_attention_mask', kind: 'mask', shape: ['B', 'T'], optional: true, doc: 'Padding mask of the instruction.' },
    ],
    outputs: [
      { ...IMAGE_OUT, shape: ['B', 'Q', 'D_llm'], doc: 'language_projection(query_output): Q image tokens for the LLM.' },
      { name: 'query_output', kind: 'embeds', shape: ['B', 'Q', 'D'], doc: 'Query outputs before the projection (for ITC / ITM heads).' },
      { name: 'text_output', kind: 'embeds', shape: ['B', 'T', 'D'], optional: true, doc: 'Text rows (present when a text input is connected).' },
    ],
    doc: {
      summary:
        'BLIP-2 Querying Transformer: Q learned query tokens pass through BERT-style post-LN layers; self-attention is ' +
        'shared with optional text tokens, cross-attention to the image embeddings runs every n-th layer (queries only), ' +
        'and queries and text have separate feed-forward networks. A Linear maps the Q outputs to the LLM width.',
      usedBy: ['BLIP-2 (32 queries, 12 layers, cross-attention every 2nd)', 'InstructBLIP (instruction-aware)', 'MiniGPT-4 (frozen, no text)'],
      formula:
        'x = LN([queries; E_w[ids] + E_p]);  per layer: x = LN(x + SelfAttn(x, mask));  q = x[:Q];  ' +
        'q = LN(q + CrossAttn(q, image)) if i mod n = 0;  q = FFN_q(q);  t = FFN_t(x[Q:]);  image_features = W·q',
      details:
        'mask_mode: itc = queries and text never see each other (unimodal); itm = bidirectional over [queries; text]; ' +
        'itg = queries see queries only, text sees all queries and earlier text (UniLM causal; put [DEC] first in ' +
        'input_ids, as LAVIS replaces [CLS]); instruct = bidirectional ' +
        'over [queries; instruction] read from qformer_input_ids, only the Q query outputs are projected. ' +
        'Without a text input only the queries run (BLIP-2 stage 2). Init: N(0, 0.02); the query FFN starts equal to ' +
        'the text FFN; weights named as in LAVIS (encoder.layer.i.attention.self.query, …, language_projection).',
    },
  },
  params: qformerParams,
  paramDocs: {
    preset: 'tiny (8 queries, width 64, 2 layers) or blip2 (BERT-base: 32 queries, 768 wide, 12 layers, encoder width 1408).',
    num_query_tokens: 'Number of learned queries Q = image tokens given to the LLM.',
    hidden_size: 'Q-Former width D.',
    num_layers: 'Number of layers.',
    num_heads: 'Attention heads (self and cross).',
    intermediate_size: 'Feed-forward hidden width.',
    cross_attention_frequency: 'Cross-attention to the image in layers 0, n, 2n, … (2 in BLIP-2).',
    vocab_size: 'Text vocabulary (tiny: the built-in tokenizer; blip2: BERT + [DEC]); used only when a text input is connected.',
    max_positions: 'Rows of the text position table.',
    d_in: `${D_IN_DOC} Falls back to the preset's encoder width when nothing is connected.`,
    d_out: D_OUT_DOC,
    mask_mode: 'Self-attention mask over [queries; text]: itc, itm, itg or instruct (see the doc card).',
    eps: 'LayerNorm epsilon (1e-12 as in BERT).',
    act: 'Feed-forward activation (hidden_act of the Q-Former config; gelu in BLIP-2 and InstructBLIP).',
  },
  inputShapes: expectedVisionWidth,
  outputShapes(p, inputs) {
    const d = qformerDims(p);
    const out: ResolvedShapes = {
      image_features: ['B', d.num_query_tokens, outWidth(p, inputs)],
      query_output: ['B', d.num_query_tokens, d.hidden_size],
    };
    const ids = inputs[textPorts(p.mask_mode).ids];
    if (ids) out.text_output = ['B', ids[1] ?? 'T', d.hidden_size];
    return out;
  },
  build: buildQFormer,
};

// ---------------------------------------------------------------------------------------------------------------
// projector.perceiver

const PERCEIVER_PRESETS = {
  tiny: { num_latents: 8, depth: 2, num_heads: 4, dim_head: 16, ff_mult: 4 },
  openflamingo: { num_latents: 64, depth: 6, num_heads: 8, dim_head: 64, ff_mult: 4 },
};
type PerceiverDims = (typeof PERCEIVER_PRESETS)['tiny'];

const perceiverParams = z.object({
  preset: z.enum(['tiny', 'openflamingo']).default('tiny'),
  num_latents: posInt(),
  depth: posInt(),
  num_heads: posInt(),
  dim_head: posInt(),
  ff_mult: posInt(),
  d_in: autoWidth(),
  d_out: autoWidth(),
  eps: z.number().positive().default(1e-5),
});
type PerceiverParams = z.infer<typeof perceiverParams>;

function perceiverDims(p: PerceiverParams): PerceiverDims {
  return withOverrides(PERCEIVER_PRESETS[p.preset], p);
}

/** Flamingo feed-forward: LN → Linear(D, m·D) → GELU → Linear(m·D, D), no biases; names `${prefix}.{0,1,3}`. */
function flamingoFeedForward(s: Scope, x: string, prefix: string, dim: number, mult: number, eps: number): string {
  const h = linear(s, layerNorm(s, x, `${prefix}.0`, dim, eps), `${prefix}.1`, dim, dim * mult, { bias: false });
  return linear(s, activation(s.b, h, 'gelu'), `${prefix}.3`, dim * mult, dim, { bias: false });
}

/** to_kv Linear(D_kv → 2·inner, no bias) split into k and v. */
function fusedKeyValue(s: Scope, x: string, name: string, kvDim: number, inner: number): [string, string] {
  const kv = linear(s, x, name, kvDim, 2 * inner, { bias: false });
  const [k, v] = s.b.opN('Split', [kv, s.b.ints([inner, inner])], { axis: -1 }, 2);
  return [k, v];
}

function buildPerceiver(p: PerceiverParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('projector.perceiver', ctx);
  const d = perceiverDims(p);
  const { dIn, dOut } = widths(s.what, p, ctx.inputShapes);
  const D = dIn;
  const inner = d.num_heads * d.dim_head;
  const { b } = s;

  let media = visionInput(s, ctx, dIn);
  media = b.add(media, s.p.weight('media_time_embs', [1, 1, D], init.normal(1)));
  let latents = expandToBatch(b, s.p.weight('latents', [d.num_latents, D], init.normal(1)), media, d.num_latents, D);
  for (let i = 0; i < d.depth; i++) {
    const a = `layers.${i}.0`;
    const m = layerNorm(s, media, `${a}.norm_media`, D, p.eps);
    const lat = layerNorm(s, latents, `${a}.norm_latents`, D, p.eps);
    const q = linear(s, lat, `${a}.to_q`, D, inner, { bias: false });
    // Latents attend to the media and to themselves.
    const [k, v] = fusedKeyValue(s, b.concat([m, lat], 1), `${a}.to_kv`, D, inner);
    const ctxOut = attentionCore(b, q, k, v, { heads: d.num_heads, headDim: d.dim_head });
    latents = b.add(latents, linear(s, ctxOut, `${a}.to_out`, inner, D, { bias: false }));
    latents = b.add(latents, flamingoFeedForward(s, latents, `layers.${i}.1`, D, d.ff_mult, p.eps));
  }
  let out = layerNorm(s, latents, 'norm', D, p.eps);
  if (dOut !== D) out = linear(s, out, 'proj', D, dOut);
  portOutput(s, 'image_features', out, [BATCH, d.num_latents, dOut]);
  return closeScope(s);
}

const perceiver: NodeTypeDef<typeof perceiverParams> = {
  info: {
    type: 'projector.perceiver',
    typeVersion: 1,
    family: 'input-projector',
    title: 'Perceiver Resampler',
    aliases: ['perceiver'],
    inputs: [VISION_IN],
    outputs: [{ ...IMAGE_OUT, shape: ['B', 'L', 'D_out'], doc: 'num_latents tokens; width D_in unless d_out differs (then a Linear).' }],
    doc: {
      summary:
        'Flamingo Perceiver Resampler: a fixed set of learned latents cross-attends to the vision tokens ' +
        '(keys and values over [media; latents]) with a feed-forward after each attention, turning any number of ' +
        'tokens into num_latents tokens at the vision width.',
      usedBy: ['Flamingo', 'OpenFlamingo (64 latents, depth 6, 8 heads × 64)', 'IDEFICS'],
      formula:
        'm = x + media_time_emb;  per layer: L += W_out·Attn(W_q·LN(L), W_kv·[LN(m); LN(L)]);  L += FF(L);  out = LN(L)',
      details:
        'The resampler itself keeps the vision width D_in (Flamingo feeds it to gated cross-attention layers). ' +
        "When d_out differs from D_in (e.g. to feed an LLM's inputs_embeds directly), a Linear 'proj' (D_in → d_out) " +
        'is appended; with d_out = D_in there is none. Single image, single frame. Latents and media_time_embs start ' +
        'N(0, 1); Linears have no bias.',
    },
  },
  params: perceiverParams,
  paramDocs: {
    preset: 'tiny (8 latents, depth 2, 4 heads × 16) or openflamingo (64 latents, depth 6, 8 heads × 64).',
    num_latents: 'Number of output tokens.',
    depth: 'Number of attention + feed-forward layers.',
    num_heads: 'Attention heads.',
    dim_head: 'Width per head.',
    ff_mult: 'Feed-forward expansion factor.',
    d_in: D_IN_DOC,
    d_out: `${D_OUT_DOC} A Linear is added only when it differs from d_in.`,
    eps: 'LayerNorm epsilon.',
  },
  inputShapes: expectedVisionWidth,
  outputShapes(p, inputs) {
    return { image_features: ['B', perceiverDims(p).num_latents, outWidth(p, inputs)] };
  },
  build: buildPerceiver,
};

// ---------------------------------------------------------------------------------------------------------------
// projector.gated_xattn

const GATED_PRESETS = {
  tiny: { num_heads: 4, dim_head: 16, ff_mult: 4 },
  openflamingo: { num_heads: 8, dim_head: 64, ff_mult: 4 },
};
type GatedDims = (typeof GATED_PRESETS)['tiny'];

const gatedParams = z.object({
  preset: z.enum(['tiny', 'openflamingo']).default('tiny'),
  num_heads: posInt(),
  dim_head: posInt(),
  ff_mult: posInt(),
  d_text: autoWidth(),
  d_visual: autoWidth(),
  only_attend_immediate_media: z.boolean().default(true),
  eps: z.number().positive().default(1e-5),
});
type GatedParams = z.infer<typeof gatedParams>;

function gatedDims(p: GatedParams): GatedDims {
  return withOverrides(GATED_PRESETS[p.preset], p);
}

function buildGated(p: GatedParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('projector.gated_xattn', ctx);
  const d = gatedDims(p);
  const dText = resolveWidth(p.d_text, ctx.inputShapes.hidden_states, { what: s.what, param: 'd_text', source: "input 'hidden_states'", symbol: '', strict: true }) as number;
  const dVis = resolveWidth(p.d_visual, ctx.inputShapes.image_features, { what: s.what, param: 'd_visual', source: "input 'image_features'", symbol: '', strict: true }) as number;
  const inner = d.num_heads * d.dim_head;
  const { b } = s;

  const x = portInput(s, 'hidden_states', 'float32', [BATCH, 'sequence_length', dText]);
  const media = portInput(s, 'image_features', 'float32', [BATCH, 'num_media_tokens', dVis]);
  const q = linear(s, layerNorm(s, x, 'attn.norm', dText, p.eps), 'attn.to_q', dText, inner, { bias: false });
  const [k, v] = fusedKeyValue(s, media, 'attn.to_kv', dVis, inner);
  let attn = attentionCore(b, q, k, v, { heads: d.num_heads, headDim: d.dim_head });
  if (isConnected(ctx.inputShapes, 'media_locations')) {
    // text_time = number of <image> tokens so far; with one image, tokens see it from its position on.
    const locations = portInput(s, 'media_locations', 'int64', [BATCH, 'sequence_length']);
    const textTime = b.op('CumSum', [locations, b.scalar(1, 'int64')]);
    const one = b.scalar(1, 'int64');
    const sees = p.only_attend_immediate_media ? b.op('Equal', [textTime, one]) : b.op('GreaterOrEqual', [textTime, one]);
    attn = b.mul(attn, b.unsqueeze(b.cast(sees, 'float32'), [2]));
  }
  const gate = (name: string) => b.op('Tanh', [s.p.weight(name, [1], init.zeros())]);
  const h = b.add(x, b.mul(gate('attn_gate'), linear(s, attn, 'attn.to_out', inner, dText, { bias: false })));
  const out = b.add(h, b.mul(gate('ff_gate'), flamingoFeedForward(s, h, 'ff', dText, d.ff_mult, p.eps)));
  portOutput(s, 'hidden_states_out', out, [BATCH, 'sequence_length', dText]);
  return closeScope(s);
}

const gatedXattn: NodeTypeDef<typeof gatedParams> = {
  info: {
    type: 'projector.gated_xattn',
    typeVersion: 1,
    family: 'input-projector',
    title: 'Gated cross-attention (Flamingo)',
    aliases: ['gated_xattn'],
    inputs: [
      { name: 'hidden_states', kind: 'embeds', shape: ['B', 'T', 'D_text'], doc: 'Text hidden states (e.g. inputs_embeds) to condition.' },
      { name: 'image_features', kind: 'embeds', shape: ['B', 'N', 'D_visual'], doc: 'Visual tokens, e.g. Perceiver latents.' },
      {
        name: 'media_locations',
        kind: 'mask',
        shape: ['B', 'T'],
        optional: true,
        doc: '1 at <image> tokens; text before the image then gets no visual input. All tokens attend when absent.',
      },
    ],
    outputs: [{ name: 'hidden_states_out', kind: 'embeds', shape: ['B', 'T', 'D_text'], doc: 'Conditioned hidden states.' }],
    doc: {
      summary:
        'Flamingo GATED XATTN-DENSE block: text tokens cross-attend to visual tokens, then a feed-forward, each ' +
        'added through a tanh gate initialised to 0, so at initialisation the output equals the input and a frozen ' +
        'LM is unchanged.',
      usedBy: ['Flamingo', 'OpenFlamingo (every 1, 2 or 4 LM layers)', 'IDEFICS'],
      formula: 'x = x + tanh(α_attn)·W_out·Attn(W_q·LN(x), W_kv·media);  x = x + tanh(α_ff)·FF(x);  α = 0 at init',
      details:
        'With media_locations, text_time = cumsum(media_locations); a token attends to the image when text_time = 1 ' +
        '(only_attend_immediate_media) or ≥ 1; tokens before any image get zero attention output. Single image. ' +
        'As a standalone node it conditions the hidden states it is given (e.g. inputs_embeds before the LLM); ' +
        'Flamingo inserts one before every n-th LM layer, which needs the LLM to host it.',
    },
  },
  params: gatedParams,
  paramDocs: {
    preset: 'tiny (4 heads × 16) or openflamingo (8 heads × 64).',
    num_heads: 'Cross-attention heads.',
    dim_head: 'Width per head.',
    ff_mult: 'Feed-forward expansion factor.',
    d_text: "Width of hidden_states; 'auto' from the connected input.",
    d_visual: "Width of image_features; 'auto' from the connected input.",
    only_attend_immediate_media: 'Tokens attend only to the most recent image (else to every earlier image).',
    eps: 'LayerNorm epsilon.',
  },
  inputShapes(p) {
    const out: ResolvedShapes = {};
    if (p.d_text !== 'auto') out.hidden_states = ['B', 'T', p.d_text];
    if (p.d_visual !== 'auto') out.image_features = ['B', 'N', p.d_visual];
    return out;
  },
  outputShapes(p, inputs) {
    const t = inputs.hidden_states;
    const width = p.d_text !== 'auto' ? p.d_text : (t?.[2] ?? 'D_text');
    return { hidden_states_out: ['B', t?.[1] ?? 'T', width] };
  },
  build: buildGated,
};

// ---------------------------------------------------------------------------------------------------------------
// projector.abstractor

const ABSTRACTOR_PRESETS = {
  tiny: { num_query_tokens: 8, num_layers: 2, num_heads: 4, intermediate_size: 256 },
  // SwiGLU hidden 2816 = ⌈(2/3·4096)/256⌉·256 (LLaMA-style sizing of intermediate 4096; not checked against a checkpoint).
  'mplug-owl': { num_query_tokens: 64, num_layers: 6, num_heads: 16, intermediate_size: 2816 },
};
type AbstractorDims = (typeof ABSTRACTOR_PRESETS)['tiny'];

const abstractorParams = z.object({
  preset: z.enum(['tiny', 'mplug-owl']).default('tiny'),
  num_query_tokens: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  d_in: autoWidth(),
  d_out: autoWidth(),
  eps: z.number().positive().default(1e-6),
});
type AbstractorParams = z.infer<typeof abstractorParams>;

function abstractorDims(p: AbstractorParams): AbstractorDims {
  return withOverrides(ABSTRACTOR_PRESETS[p.preset], p);
}

function buildAbstractor(p: AbstractorParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('projector.abstractor', ctx);
  const d = abstractorDims(p);
  const { dIn, dOut } = widths(s.what, p, ctx.inputShapes);
  const D = dIn; // queries share the vision width so they can sit next to the image tokens as keys
  const Q = d.num_query_tokens;
  if (D % d.num_heads !== 0) throw new NodeBuildError(`${s.what}: vision width ${D} is not divisible by num_heads ${d.num_heads}`);
  const { b } = s;
  const std = init.normal(0.02);

  const image = visionInput(s, ctx, dIn);
  let x = expandToBatch(b, s.p.weight('query_embeds', [1, Q, D], std), image, Q, D);
  for (let i = 0; i < d.num_layers; i++) {
    const l = `encoder.layers.${i}.crossattention`;
    const qn = layerNorm(s, x, `${l}.norm1`, D, p.eps);
    const kn = layerNorm(s, image, `${l}.normk`, D, p.eps);
    const a = attention(s, qn, b.concat([qn, kn], 1), {
      q: `${l}.attention.query`,
      k: `${l}.attention.key`,
      v: `${l}.attention.value`,
      out: `${l}.output.out_proj`,
    }, { dim: D, heads: d.num_heads, init: { q: std, k: std, v: std, out: std } });
    x = b.add(qn, a);
    const m = swiglu(s, layerNorm(s, x, `${l}.output.norm2`, D, p.eps), {
      w1: `${l}.output.mlp.w1`,
      w2: `${l}.output.mlp.w2`,
      w3: `${l}.output.mlp.w3`,
      innerNorm: `${l}.output.mlp.ffn_ln`,
    }, { dim: D, hidden: d.intermediate_size, bias: true, eps: p.eps, weightInit: std });
    x = b.add(x, m);
  }
  const projected = linear(s, x, 'visual_fc', D, dOut, { weightInit: std, biasInit: init.zeros() });
  const eos = expandToBatch(b, s.p.weight('vit_eos', [1, 1, dOut], init.truncNormal(0.02)), image, 1, dOut);
  portOutput(s, 'image_features', b.concat([projected, eos], 1), [BATCH, Q + 1, dOut]);
  return closeScope(s);
}

const abstractor: NodeTypeDef<typeof abstractorParams> = {
  info: {
    type: 'projector.abstractor',
    typeVersion: 1,
    family: 'input-projector',
    title: 'Visual abstractor (mPLUG-Owl)',
    aliases: ['abstractor'],
    inputs: [VISION_IN],
    outputs: [{ ...IMAGE_OUT, shape: ['B', 'Q+1', 'D_llm'], doc: 'Q query tokens plus the learned vit_eos token.' }],
    doc: {
      summary:
        'mPLUG-Owl visual abstractor: learned queries attend to the image tokens and to themselves (keys and values ' +
        'over [norm(queries); norm(image)]), each layer followed by a SwiGLU MLP; visual_fc maps to the LLM width ' +
        'and a learned end-of-image token is appended, giving Q + 1 tokens.',
      usedBy: ['mPLUG-Owl (64 queries, 6 layers, width 1024)'],
      formula:
        'q̂ = LN₁(q);  q = q̂ + W_o·Attn(q̂, [q̂; LN_k(img)]);  q += W₂·LN(SiLU(W₁·LN₂ q) ⊙ W₃·LN₂ q);  ' +
        'image_features = [visual_fc(q); vit_eos]',
      details:
        'The queries have the vision width. Init N(0, 0.02) for Linears and queries, trunc-normal 0.02 for vit_eos. ' +
        'The mplug-owl preset’s SwiGLU width (2816) follows LLaMA-style sizing and is not verified against the checkpoint.',
    },
  },
  params: abstractorParams,
  paramDocs: {
    preset: 'tiny (8 queries, 2 layers, 4 heads) or mplug-owl (64 queries, 6 layers, 16 heads).',
    num_query_tokens: 'Number of learned queries Q (output has Q + 1 tokens).',
    num_layers: 'Number of abstractor layers.',
    num_heads: 'Attention heads; must divide the vision width.',
    intermediate_size: 'SwiGLU hidden width.',
    d_in: `${D_IN_DOC} Also the queries' width.`,
    d_out: D_OUT_DOC,
    eps: 'LayerNorm epsilon.',
  },
  inputShapes: expectedVisionWidth,
  outputShapes(p, inputs) {
    return { image_features: ['B', abstractorDims(p).num_query_tokens + 1, outWidth(p, inputs)] };
  },
  build: buildAbstractor,
};

export const nodeTypes: NodeTypeDef[] = [linearProjector, mlpProjector, qformer, perceiver, gatedXattn, abstractor];
