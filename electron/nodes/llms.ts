// LLM backbones: decoder-only language models (GPT-2, OPT, LLaMA flavours) as ONNX fragments with a KV cache,
// the token-embedding lookup that feeds them, and the node that merges image features into the text embeddings.
//
// Port contract (Optimum / Transformers.js decoder with `inputs_embeds`, research/vlm-components.md §3.1, §3.6):
//   inputs_embeds [B,S,D] f32, attention_mask [B,P+S] i64, position_ids [B,S] i64,
//   past_key_values.{i}.key|value [B,kvH,P,hd] f32   →   logits [B,S,V], last_hidden_state [B,S,D],
//   present.{i}.key|value [B,kvH,P+S,hd].
// The first step feeds zero-length past tensors (P = 0). The causal + padding mask is built inside the graph, so a
// left-padded batch and a cached step (P > 0) are both correct. `position_ids` is always an input: the generation
// loop computes it from the mask (cumsum(mask) − 1) as Transformers.js does.
//
// Weight names follow the PyTorch state dicts without the model prefix (see `hfCheckpointName`), except that the
// word embedding is always `embed_tokens.weight`: the `llm.embed_tokens` node uses the same initializer name, and
// the executor shares that tensor between the embedding node and the decoder it feeds (tied heads use it as the
// LM head). LLaMA's head is untied, so its decoder fragment does not contain `embed_tokens.weight` at all.

import { z } from 'zod';
import { GraphBuilder } from '../onnx/builder.js';
import { type Dim, type Graph, type Tensor, emptyGraph, tensorFromNumbers, tensorSize, tensorToNumbers } from '../onnx/ir.js';
import { Rng } from '../engine/rng.js';
import { MASK_VALUE, isMetaBuild, missingCheckpointWeights } from './blocks.js';
import type { BuildContext, NodeTypeDef, OnnxFragment, PortSpec, ResolvedShapes } from './types.js';

export const OPSET = 17;

/** Size of the built-in tokenizer's vocabulary (models/tokenizer.json); tokenizer.test.ts checks they agree. */
export const BUILTIN_VOCAB_SIZE = 316;

/** Initializer name of the word-embedding table, shared by `llm.embed_tokens` and tied decoder heads. */
export const WORD_EMBEDDING = 'embed_tokens.weight';

/** Seeded initialisation refuses to allocate more than this; real-size presets need supplied weights. */
export const MAX_SEEDED_INIT_BYTES = 1 << 30;

export const FLAVOURS = ['gpt2', 'opt', 'llama'] as const;
export type Flavour = (typeof FLAVOURS)[number];

export class LlmError extends Error {
  override name = 'LlmError';
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration: presets + overrides

export interface DecoderConfig {
  flavour: Flavour;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  maxPositions: number;
  normEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  initStd: number;
  /** Per-head width; hidden_size / num_heads unless the checkpoint says otherwise (llama flavour). */
  headDim: number;
  /** Which attention projections carry a bias (llama flavour: Qwen2 'qkv', LLaMA attention_bias 'all'). */
  attentionBias: AttentionBias;
  /** Rotary frequency scaling (llama flavour), as transformers' rope_scaling. */
  ropeScaling: RopeScaling | null;
  /** Keys further back than this many positions are not attended (Mistral, Qwen2 sliding-window attention). */
  slidingWindow: number | null;
}

export const ATTENTION_BIAS = ['none', 'qkv', 'all'] as const;
export type AttentionBias = (typeof ATTENTION_BIAS)[number];

/** transformers' `rope_scaling` kinds Composer computes (both change only the rotary frequencies). */
export const ropeScalingSchema = z.discriminatedUnion('rope_type', [
  z.strictObject({ rope_type: z.literal('linear'), factor: z.number().positive() }),
  z.strictObject({
    rope_type: z.literal('llama3'),
    factor: z.number().positive(),
    low_freq_factor: z.number().positive(),
    high_freq_factor: z.number().positive(),
    original_max_position_embeddings: z.number().int().positive(),
  }),
]);
export type RopeScaling = z.infer<typeof ropeScalingSchema>;

type PresetDims = Omit<DecoderConfig, 'initStd' | 'headDim' | 'attentionBias' | 'ropeScaling' | 'slidingWindow'>;

const FLAVOUR_DEFAULTS: Record<Flavour, Pick<DecoderConfig, 'normEps' | 'tieWordEmbeddings' | 'ropeTheta'>> = {
  gpt2: { normEps: 1e-5, tieWordEmbeddings: true, ropeTheta: 10000 },
  opt: { normEps: 1e-5, tieWordEmbeddings: true, ropeTheta: 10000 },
  llama: { normEps: 1e-6, tieWordEmbeddings: false, ropeTheta: 10000 },
};

/** Tiny dims per flavour: width 96, 2 layers, 4 heads, 128 positions, the built-in vocabulary. */
function tinyPreset(flavour: Flavour): PresetDims {
  return {
    flavour,
    vocabSize: BUILTIN_VOCAB_SIZE,
    hiddenSize: 96,
    numLayers: 2,
    numHeads: 4,
    // The tiny LLaMA uses grouped-query attention so the GQA path is exercised everywhere it runs.
    numKvHeads: flavour === 'llama' ? 2 : 4,
    intermediateSize: flavour === 'llama' ? 256 : 384,
    maxPositions: 128,
    ...FLAVOUR_DEFAULTS[flavour],
  };
}

/** Real checkpoint shapes (HF config.json values). */
const REAL_PRESETS = {
  gpt2: {
    flavour: 'gpt2', vocabSize: 50257, hiddenSize: 768, numLayers: 12, numHeads: 12, numKvHeads: 12,
    intermediateSize: 3072, maxPositions: 1024, ...FLAVOUR_DEFAULTS.gpt2,
  },
  'opt-125m': {
    flavour: 'opt', vocabSize: 50272, hiddenSize: 768, numLayers: 12, numHeads: 12, numKvHeads: 12,
    intermediateSize: 3072, maxPositions: 2048, ...FLAVOUR_DEFAULTS.opt,
  },
  'opt-2.7b': {
    flavour: 'opt', vocabSize: 50272, hiddenSize: 2560, numLayers: 32, numHeads: 32, numKvHeads: 32,
    intermediateSize: 10240, maxPositions: 2048, ...FLAVOUR_DEFAULTS.opt,
  },
  // Vicuna-7B v1.5 (LLaMA-2 base, as in LLaVA-1.5): eps 1e-5, 4096 positions.
  'vicuna-7b': {
    flavour: 'llama', vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 32,
    intermediateSize: 11008, maxPositions: 4096, normEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: false,
  },
} satisfies Record<string, PresetDims>;

export const PRESETS = ['tiny', ...(Object.keys(REAL_PRESETS) as Array<keyof typeof REAL_PRESETS>)] as const;

const int = () => z.number().int().positive();

export const DecoderParams = z.object({
  preset: z.enum(PRESETS).default('tiny'),
  flavour: z.enum(FLAVOURS).optional(),
  vocab_size: int().optional(),
  hidden_size: int().optional(),
  num_layers: int().optional(),
  num_heads: int().optional(),
  num_kv_heads: int().optional(),
  intermediate_size: int().optional(),
  max_positions: int().optional(),
  norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  tie_word_embeddings: z.boolean().optional(),
  head_dim: int().optional(),
  attention_bias: z.enum(ATTENTION_BIAS).default('none'),
  rope_scaling: ropeScalingSchema.nullable().default(null),
  sliding_window: int().nullable().default(null),
  init_std: z.number().positive().default(0.02),
  // Generation (used when the `text` output is connected); they never change the built model.
  max_new_tokens: z.number().int().positive().max(4096).default(16),
  temperature: z.number().nonnegative().default(0),
  top_k: z.number().int().nonnegative().default(0),
  top_p: z.number().positive().max(1).default(1),
  sample_seed: z.number().int().nonnegative().default(0),
  use_cache: z.boolean().default(true),
  tokenizer: z.string().default('builtin'),
  eos_token_ids: z.array(z.number().int().nonnegative()).nullable().default(null),
});
/** Params that only steer generation: excluded from the build key so changing them reuses the session. */
export const GENERATION_PARAMS = ['max_new_tokens', 'temperature', 'top_k', 'top_p', 'sample_seed', 'use_cache', 'tokenizer', 'eos_token_ids'] as const;
export type DecoderParamsInput = z.input<typeof DecoderParams>;
export type DecoderParamsValue = z.output<typeof DecoderParams>;

const DECODER_PARAM_DOCS: Record<keyof DecoderParamsValue, string> = {
  preset:
    "Dimensions to start from: 'tiny' (width 96, 2 layers, 4 heads, built-in vocabulary) or a real checkpoint shape " +
    '(gpt2, opt-125m, opt-2.7b, vicuna-7b). Real shapes need supplied weights to build.',
  flavour:
    "Architecture: 'gpt2' (learned positions, pre-LN, tanh-GELU, fused c_attn, tied head), 'opt' (learned positions " +
    "offset by 2, pre-LN, ReLU, tied head), 'llama' (RMSNorm, rotary positions, SwiGLU, untied head, no biases, " +
    "grouped-query attention). Default: the preset's ('opt' for tiny).",
  vocab_size: 'Vocabulary size V (rows of the embedding and of the LM head). Default: from the preset.',
  hidden_size: 'Model width D. Default: from the preset.',
  num_layers: 'Number of decoder layers L. Default: from the preset.',
  num_heads: 'Attention heads H (D must divide by H). Default: from the preset.',
  num_kv_heads: 'Key/value heads for grouped-query attention (llama only; H must divide by it). Default: H.',
  intermediate_size: 'Hidden width of the MLP (4·D for gpt2/opt). Default: from the preset.',
  max_positions: 'Longest sequence (past + new tokens) the position table covers. Default: from the preset.',
  norm_eps: 'Epsilon of LayerNorm / RMSNorm. Default: 1e-5 (gpt2, opt), 1e-6 (llama tiny), 1e-5 (vicuna-7b).',
  rope_theta: 'Rotary base θ (llama only). Default 10000.',
  tie_word_embeddings: 'Use the word embedding as the LM head. Default: true for gpt2/opt, false for llama.',
  head_dim: 'Per-head width (llama only) when it is not hidden_size / num_heads. Default: hidden_size / num_heads.',
  attention_bias:
    "Biases of the attention projections (llama only): 'none' (LLaMA, Mistral), 'qkv' (Qwen2: q, k, v but not o), 'all'.",
  rope_scaling:
    "Rotary frequency scaling (llama only), as transformers' rope_scaling: null, {rope_type:'linear', factor} or " +
    "{rope_type:'llama3', factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}.",
  sliding_window: 'Sliding-window attention (llama only: Mistral, Qwen2): keys more than this many positions back are masked. null = off.',
  init_std: 'Std of the N(0, σ²) initialisation of linear and embedding weights (HF initializer_range).',
  max_new_tokens: 'Generation: at most this many new tokens (stops earlier at </s>).',
  temperature: 'Generation: softmax temperature; 0 = greedy decoding.',
  top_k: 'Generation: sample only among the k most likely tokens (0 = off).',
  top_p: 'Generation: nucleus sampling, keep the most likely tokens up to probability p (1 = off).',
  sample_seed: 'Generation: seed of the sampling RNG (sampling is reproducible for a seed).',
  use_cache: 'Generation: reuse keys/values of earlier positions (KV cache) instead of re-running the whole sequence.',
  tokenizer: "Generation: tokenizer used to turn generated ids into text ('builtin' or a tokenizer.json path).",
  eos_token_ids: "Generation: token ids that end the answer (generation_config.json's eos_token_id); null = the tokenizer's eos.",
};

/** Resolves preset + overrides into concrete dims, checking every constraint with a message naming the param. */
export function resolveDecoderConfig(params: DecoderParamsInput, what = 'llm.decoder'): DecoderConfig {
  const parsed = DecoderParams.safeParse(params);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LlmError(`${what}: param '${issue?.path.join('.')}' ${issue?.message ?? 'is invalid'}`);
  }
  const p = parsed.data;
  let base: PresetDims;
  if (p.preset === 'tiny') {
    base = tinyPreset(p.flavour ?? 'opt');
  } else {
    base = REAL_PRESETS[p.preset];
    if (p.flavour !== undefined && p.flavour !== base.flavour) {
      throw new LlmError(`${what}: preset '${p.preset}' is a ${base.flavour} model, but flavour is '${p.flavour}'`);
    }
  }
  const flavour = base.flavour;
  const numHeads = p.num_heads ?? base.numHeads;
  const cfg: DecoderConfig = {
    flavour,
    vocabSize: p.vocab_size ?? base.vocabSize,
    hiddenSize: p.hidden_size ?? base.hiddenSize,
    numLayers: p.num_layers ?? base.numLayers,
    numHeads,
    numKvHeads: p.num_kv_heads ?? (p.num_heads !== undefined ? numHeads : base.numKvHeads),
    intermediateSize: p.intermediate_size ?? base.intermediateSize,
    maxPositions: p.max_positions ?? base.maxPositions,
    normEps: p.norm_eps ?? base.normEps,
    ropeTheta: p.rope_theta ?? base.ropeTheta,
    tieWordEmbeddings: p.tie_word_embeddings ?? base.tieWordEmbeddings,
    initStd: p.init_std,
    headDim: p.head_dim ?? (p.hidden_size ?? base.hiddenSize) / numHeads,
    attentionBias: p.attention_bias,
    ropeScaling: p.rope_scaling,
    slidingWindow: p.sliding_window,
  };
  const fail = (why: string) => new LlmError(`${what}: ${why}`);
  if (p.head_dim === undefined && cfg.hiddenSize % cfg.numHeads !== 0) {
    throw fail(`hidden_size ${cfg.hiddenSize} is not divisible by num_heads ${cfg.numHeads}`);
  }
  if (cfg.numHeads % cfg.numKvHeads !== 0) {
    throw fail(`num_heads ${cfg.numHeads} is not divisible by num_kv_heads ${cfg.numKvHeads}`);
  }
  if (flavour !== 'llama' && cfg.numKvHeads !== cfg.numHeads) {
    throw fail(`num_kv_heads (grouped-query attention) is only available for flavour 'llama', not '${flavour}'`);
  }
  if (flavour !== 'llama') {
    const llamaOnly: Array<[string, boolean]> = [
      ['head_dim', p.head_dim !== undefined && p.head_dim !== cfg.hiddenSize / cfg.numHeads],
      ['attention_bias', cfg.attentionBias !== 'none'],
      ['rope_scaling', cfg.ropeScaling !== null],
      ['sliding_window', cfg.slidingWindow !== null],
    ];
    for (const [name, set] of llamaOnly) if (set) throw fail(`${name} is only available for flavour 'llama', not '${flavour}'`);
  }
  if (!Number.isInteger(cfg.headDim)) throw fail(`hidden_size ${cfg.hiddenSize} / num_heads ${cfg.numHeads} is not a whole head size; set head_dim`);
  if (flavour === 'llama' && cfg.headDim % 2 !== 0) {
    throw fail(`rotary embeddings need an even head size, got ${cfg.headDim}`);
  }
  return cfg;
}

export function headDim(cfg: DecoderConfig): number {
  return cfg.headDim;
}

// ---------------------------------------------------------------------------------------------------------------
// Weights: names, shapes and init, known before anything is allocated

export type WeightInit = { kind: 'normal'; std: number } | { kind: 'zeros' } | { kind: 'ones' };

export interface WeightSpec {
  name: string;
  shape: number[];
  init: WeightInit;
}

/** Every weight of the decoder fragment (the word embedding only when the head is tied to it). */
export function decoderWeightSpecs(cfg: DecoderConfig): WeightSpec[] {
  const D = cfg.hiddenSize;
  const F = cfg.intermediateSize;
  const V = cfg.vocabSize;
  const kvD = cfg.numKvHeads * headDim(cfg);
  const qD = cfg.numHeads * headDim(cfg);
  const normal = (std = cfg.initStd): WeightInit => ({ kind: 'normal', std });
  const zeros: WeightInit = { kind: 'zeros' };
  const ones: WeightInit = { kind: 'ones' };
  const specs: WeightSpec[] = [];
  const add = (name: string, shape: number[], init: WeightInit) => specs.push({ name, shape, init });
  const layerNorm = (prefix: string) => {
    add(`${prefix}.weight`, [D], ones);
    add(`${prefix}.bias`, [D], zeros);
  };
  // PyTorch nn.Linear layout: weight [out, in].
  const linear = (prefix: string, outF: number, inF: number, bias: boolean, std = cfg.initStd) => {
    add(`${prefix}.weight`, [outF, inF], normal(std));
    if (bias) add(`${prefix}.bias`, [outF], zeros);
  };

  if (cfg.tieWordEmbeddings) add(WORD_EMBEDDING, [V, D], normal());
  if (cfg.flavour === 'gpt2') {
    add('wpe.weight', [cfg.maxPositions, D], normal());
    // GPT-2 scales residual projections by 1/√(2L) (modeling_gpt2.py _init_weights).
    const projStd = cfg.initStd / Math.sqrt(2 * cfg.numLayers);
    for (let i = 0; i < cfg.numLayers; i++) {
      const h = `h.${i}`;
      // HF Conv1D layout: weight [in, out].
      layerNorm(`${h}.ln_1`);
      add(`${h}.attn.c_attn.weight`, [D, 3 * D], normal());
      add(`${h}.attn.c_attn.bias`, [3 * D], zeros);
      add(`${h}.attn.c_proj.weight`, [D, D], normal(projStd));
      add(`${h}.attn.c_proj.bias`, [D], zeros);
      layerNorm(`${h}.ln_2`);
      add(`${h}.mlp.c_fc.weight`, [D, F], normal());
      add(`${h}.mlp.c_fc.bias`, [F], zeros);
      add(`${h}.mlp.c_proj.weight`, [F, D], normal(projStd));
      add(`${h}.mlp.c_proj.bias`, [D], zeros);
    }
    layerNorm('ln_f');
  } else if (cfg.flavour === 'opt') {
    add('embed_positions.weight', [cfg.maxPositions + OPT_POSITION_OFFSET, D], normal());
    for (let i = 0; i < cfg.numLayers; i++) {
      const l = `layers.${i}`;
      layerNorm(`${l}.self_attn_layer_norm`);
      for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(`${l}.self_attn.${proj}`, D, D, true);
      layerNorm(`${l}.final_layer_norm`);
      linear(`${l}.fc1`, F, D, true);
      linear(`${l}.fc2`, D, F, true);
    }
    layerNorm('final_layer_norm');
  } else {
    for (let i = 0; i < cfg.numLayers; i++) {
      const l = `layers.${i}`;
      add(`${l}.input_layernorm.weight`, [D], ones);
      const qkvBias = cfg.attentionBias !== 'none';
      linear(`${l}.self_attn.q_proj`, qD, D, qkvBias);
      linear(`${l}.self_attn.k_proj`, kvD, D, qkvBias);
      linear(`${l}.self_attn.v_proj`, kvD, D, qkvBias);
      linear(`${l}.self_attn.o_proj`, D, qD, cfg.attentionBias === 'all');
      add(`${l}.post_attention_layernorm.weight`, [D], ones);
      linear(`${l}.mlp.gate_proj`, F, D, false);
      linear(`${l}.mlp.up_proj`, F, D, false);
      linear(`${l}.mlp.down_proj`, D, F, false);
    }
    add('norm.weight', [D], ones);
  }
  if (!cfg.tieWordEmbeddings) add('lm_head.weight', [V, D], normal());
  return specs;
}

export function embedWeightSpecs(cfg: DecoderConfig): WeightSpec[] {
  return [{ name: WORD_EMBEDDING, shape: [cfg.vocabSize, cfg.hiddenSize], init: { kind: 'normal', std: cfg.initStd } }];
}

export interface DecoderDescription {
  config: DecoderConfig;
  /** Weights of the decoder fragment. */
  weights: Array<{ name: string; shape: number[] }>;
  /** Parameters in the decoder fragment. */
  decoderParameters: number;
  /** Parameters of the whole language model (decoder + word embedding when it is not inside the decoder). */
  totalParameters: number;
  /** float32 bytes of the whole language model. */
  totalBytes: number;
}

/** Parameter counts and weight shapes of a decoder configuration, without allocating any weight. */
export function describeDecoder(params: DecoderParamsInput): DecoderDescription {
  const config = resolveDecoderConfig(params);
  const specs = decoderWeightSpecs(config);
  const decoderParameters = specs.reduce((n, s) => n + tensorSize(s.shape), 0);
  const totalParameters = decoderParameters + (config.tieWordEmbeddings ? 0 : config.vocabSize * config.hiddenSize);
  return {
    config,
    weights: specs.map(({ name, shape }) => ({ name, shape: [...shape] })),
    decoderParameters,
    totalParameters,
    totalBytes: totalParameters * 4,
  };
}

/**
 * The weights of a fragment: supplied ones (validated by name and shape; f16/bf16/f64 converted to float32) and
 * seeded init for the rest. Each seeded weight draws from its own stream (`seed` forked by the weight name, as in
 * blocks.ts), so adding or removing a weight never changes the others. A meta build (blocks.ts `MetaBuildContext`)
 * gets empty buffers: the structure and parameter count of a real-size model without its memory.
 */
export function materializeWeights(specs: WeightSpec[], ctx: BuildContext, what: string): Map<string, Tensor> {
  const supplied = ctx.weights ?? new Map<string, Tensor>();
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const [name, t] of supplied) {
    const spec = byName.get(name);
    if (!spec) {
      const known = specs.slice(0, 6).map((s) => s.name).join(', ');
      throw new LlmError(`${what}: supplied weight '${name}' is not a weight of this node (it has ${known}, …)`);
    }
    if (!['float32', 'float16', 'bfloat16', 'float64'].includes(t.dtype)) {
      throw new LlmError(`${what}: weight '${name}' must be a float tensor, got ${t.dtype}`);
    }
    if (t.dims.length !== spec.shape.length || t.dims.some((d, i) => d !== spec.shape[i])) {
      throw new LlmError(`${what}: weight '${name}' has shape [${t.dims}], expected [${spec.shape}]`);
    }
  }
  const meta = isMetaBuild(ctx);
  const partial = missingCheckpointWeights(what, specs.map((s) => s.name), ctx.weights, ctx.freshWeights);
  if (partial) throw partial;
  const missing = specs.filter((s) => !supplied.has(s.name));
  const missingBytes = missing.reduce((n, s) => n + tensorSize(s.shape) * 4, 0);
  if (!meta && missingBytes > MAX_SEEDED_INIT_BYTES) {
    throw new LlmError(
      `${what}: ${missing.length} weights (${(missingBytes / 2 ** 30).toFixed(1)} GiB, e.g. '${missing[0].name}') ` +
        `were not supplied and are too large to initialise randomly; load a checkpoint for this preset`,
    );
  }
  const root = new Rng(ctx.seed);
  const out = new Map<string, Tensor>();
  for (const spec of specs) {
    const given = supplied.get(spec.name);
    if (given) {
      out.set(spec.name, given.dtype === 'float32' ? given : { dtype: 'float32', dims: [...given.dims], data: Float32Array.from(tensorToNumbers(given)) });
      continue;
    }
    if (meta) {
      out.set(spec.name, { dtype: 'float32', dims: [...spec.shape], data: new Float32Array(0) });
      continue;
    }
    const data = new Float32Array(tensorSize(spec.shape));
    if (spec.init.kind === 'normal') root.fork(spec.name).fillNormal(data, spec.init.std);
    else if (spec.init.kind === 'ones') data.fill(1);
    out.set(spec.name, { dtype: 'float32', dims: [...spec.shape], data });
  }
  return out;
}

/** Name of one of our weights in the HuggingFace `*ForCausalLM` state dict. */
export function hfCheckpointName(flavour: Flavour, name: string): string {
  if (name === 'lm_head.weight') return name;
  if (flavour === 'gpt2') return name === WORD_EMBEDDING ? 'transformer.wte.weight' : `transformer.${name}`;
  if (flavour === 'opt') return `model.decoder.${name}`;
  return `model.${name}`;
}

/**
 * Picks and renames this node's weights out of a HuggingFace state dict (GPT-2 Conv1D weights are already in our
 * layout). A tied checkpoint without `lm_head.weight` is fine; a missing weight is an error naming it.
 */
export function weightsFromHfStateDict(specs: WeightSpec[], flavour: Flavour, state: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const spec of specs) {
    const hfName = hfCheckpointName(flavour, spec.name);
    const t = state.get(hfName) ?? state.get(hfName.replace(/^(transformer|model)\./, ''));
    if (!t) throw new LlmError(`checkpoint has no tensor '${hfName}' (needed for weight '${spec.name}')`);
    out.set(spec.name, t);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Graph construction

/** OPT's learned positions are offset by 2 rows (modeling_opt.py OPTLearnedPositionalEmbedding). */
export const OPT_POSITION_OFFSET = 2;

const DIM_B = 'batch_size';
const DIM_S = 'sequence_length';
const DIM_P = 'past_sequence_length';
const DIM_T = 'past_sequence_length + sequence_length';

export function pastKeyName(i: number): string {
  return `past_key_values.${i}.key`;
}
export function pastValueName(i: number): string {
  return `past_key_values.${i}.value`;
}
export function presentKeyName(i: number): string {
  return `present.${i}.key`;
}
export function presentValueName(i: number): string {
  return `present.${i}.value`;
}

/**
 * Rotary inverse frequencies θ^(−2j/hd) in float32 (as transformers computes them), with rope_scaling applied:
 * 'linear' divides them by the factor; 'llama3' divides low frequencies by the factor and blends the band between
 * (modeling_rope_utils `_compute_llama3_parameters`).
 */
export function ropeInverseFrequencies(cfg: DecoderConfig): Float32Array {
  const hd = headDim(cfg);
  const f = Math.fround;
  const inv = new Float32Array(hd / 2);
  for (let j = 0; j < hd / 2; j++) inv[j] = f(1 / f(Math.pow(cfg.ropeTheta, f((2 * j) / hd))));
  const s = cfg.ropeScaling;
  if (s?.rope_type === 'linear') for (let j = 0; j < inv.length; j++) inv[j] = f(inv[j] / s.factor);
  if (s?.rope_type === 'llama3') {
    const lowWavelen = s.original_max_position_embeddings / s.low_freq_factor;
    const highWavelen = s.original_max_position_embeddings / s.high_freq_factor;
    for (let j = 0; j < inv.length; j++) {
      const wavelen = (2 * Math.PI) / inv[j];
      if (wavelen > lowWavelen) inv[j] = f(inv[j] / s.factor);
      else if (wavelen >= highWavelen) {
        const smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        inv[j] = f((1 - smooth) * (inv[j] / s.factor) + smooth * inv[j]);
      }
    }
  }
  return inv;
}

/** Graph-building helpers shared by the three flavours. */
class DecoderWriter {
  readonly b: GraphBuilder;
  constructor(
    readonly graph: Graph,
    readonly cfg: DecoderConfig,
  ) {
    this.b = new GraphBuilder(graph);
  }

  /** x @ Wᵀ (+ b) for PyTorch-layout [out,in] weights; `conv1d` weights are [in,out] (GPT-2). */
  linear(x: string, prefix: string, opts: { bias: boolean; conv1d?: boolean }): string {
    const w = `${prefix}.weight`;
    const y = this.b.matmul(x, opts.conv1d ? w : this.b.transpose(w, [1, 0]));
    return opts.bias ? this.b.add(y, `${prefix}.bias`) : y;
  }

  layerNorm(x: string, prefix: string, outputName?: string): string {
    return this.b.op(
      'LayerNormalization',
      [x, `${prefix}.weight`, `${prefix}.bias`],
      { axis: -1, epsilon: this.cfg.normEps },
      outputName ? { outputs: [outputName] } : {},
    );
  }

  /** LLaMA RMSNorm: w ⊙ x / √(mean(x²) + ε). */
  rmsNorm(x: string, weight: string, outputName?: string): string {
    const b = this.b;
    const meanSquare = b.reduceMean(b.mul(x, x), [-1], true, OPSET);
    const rms = b.op('Sqrt', [b.add(meanSquare, b.scalar(this.cfg.normEps))]);
    return b.op('Mul', [b.div(x, rms), weight], {}, outputName ? { outputs: [outputName] } : {});
  }

  /** GPT-2 gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
  geluTanh(x: string): string {
    const b = this.b;
    const cube = b.mul(b.mul(x, x), x);
    const inner = b.mul(b.add(x, b.mul(cube, b.scalar(0.044715))), b.scalar(Math.sqrt(2 / Math.PI)));
    return b.mul(b.mul(x, b.scalar(0.5)), b.add(b.op('Tanh', [inner]), b.scalar(1)));
  }

  /** [B,S,heads·hd] → [B,heads,S,hd]. */
  splitHeads(x: string, heads: number): string {
    return this.b.transpose(this.b.reshape(x, [0, 0, heads, headDim(this.cfg)]), [0, 2, 1, 3]);
  }

  /**
   * Additive attention bias [B,1,S,T]: 0 where key t may be seen by query s (t ≤ P + s and attention_mask[b,t] = 1),
   * MASK_VALUE (blocks.ts, −1e9) elsewhere; fully masked rows (query positions that are padding) stay finite.
   */
  attentionBias(inputsEmbeds: string, attentionMask: string, pastKey: string): string {
    const b = this.b;
    const S = b.op('Shape', [inputsEmbeds], { start: 1, end: 2 });
    const P = b.op('Shape', [pastKey], { start: 2, end: 3 });
    const T = b.add(P, S);
    const zero = b.scalar(0, 'int64');
    const one = b.scalar(1, 'int64');
    const keyPos = b.op('Range', [zero, b.squeeze(T, [0]), one]); // [T]
    const queryPos = b.op('Range', [b.squeeze(P, [0]), b.squeeze(T, [0]), one]); // [S] absolute positions
    let causal = b.op('LessOrEqual', [b.unsqueeze(keyPos, [0]), b.unsqueeze(queryPos, [1])]); // [S,T]
    if (this.cfg.slidingWindow !== null) {
      // Sliding window (transformers' sliding_window_overlay): key t is seen by query s only when s − t < window.
      const oldest = b.sub(b.unsqueeze(queryPos, [1]), b.scalar(this.cfg.slidingWindow, 'int64'));
      causal = b.op('And', [causal, b.op('Greater', [b.unsqueeze(keyPos, [0]), oldest])]);
    }
    const padding = b.unsqueeze(b.cast(attentionMask, 'bool'), [1, 2]); // [B,1,1,T]
    const allowed = b.op('And', [b.unsqueeze(causal, [0, 1]), padding]); // [B,1,S,T]
    return b.op('Where', [allowed, b.scalar(0), b.scalar(MASK_VALUE)]);
  }

  /**
   * cos/sin [B,1,S,hd] for rotary embeddings, computed in the graph from `position_ids` in float32 as transformers
   * does (angle = position · inv_freq, the half-split layout cat(freqs, freqs)), so any position works and no
   * max_positions-sized table is stored.
   */
  ropeTables(positionIds: string): { cos: string; sin: string } {
    const b = this.b;
    const invFreq = b.initializer('rope.inv_freq', { dtype: 'float32', dims: [headDim(this.cfg) / 2], data: ropeInverseFrequencies(this.cfg) });
    const angles = b.mul(b.unsqueeze(b.cast(positionIds, 'float32'), [2]), invFreq); // [B,S,hd/2]
    const freqs = b.concat([angles, angles], -1);
    return { cos: b.unsqueeze(b.op('Cos', [freqs]), [1]), sin: b.unsqueeze(b.op('Sin', [freqs]), [1]) };
  }

  /** x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] over the two halves of the head dim. */
  applyRope(x: string, rope: { cos: string; sin: string }): string {
    const b = this.b;
    const half = headDim(this.cfg) / 2;
    const [x1, x2] = b.opN('Split', [x, b.ints([half, half])], { axis: -1 }, 2);
    const rotated = b.concat([b.neg(x2), x1], -1);
    return b.add(b.mul(x, rope.cos), b.mul(rotated, rope.sin));
  }

  /**
   * Scaled dot-product attention with the KV cache: appends the new keys/values to the past ones (these are the
   * `present` outputs) and attends over all of them. q: [B,H,S,hd]; k, v: [B,kvH,S,hd]. Returns [B,S,D].
   */
  attention(layer: number, q: string, k: string, v: string, bias: string): string {
    const b = this.b;
    const { numHeads: H, numKvHeads: kvH } = this.cfg;
    const hd = headDim(this.cfg);
    const keys = b.op('Concat', [pastKeyName(layer), k], { axis: 2 }, { outputs: [presentKeyName(layer)] });
    const values = b.op('Concat', [pastValueName(layer), v], { axis: 2 }, { outputs: [presentValueName(layer)] });
    const scale = b.scalar(1 / Math.sqrt(hd));
    let context: string;
    if (kvH === H) {
      const scores = b.add(b.mul(b.matmul(q, b.transpose(keys, [0, 1, 3, 2])), scale), bias);
      context = b.matmul(b.op('Softmax', [scores], { axis: -1 }), values);
    } else {
      // Grouped-query attention by broadcasting: query head h uses kv head ⌊h / (H/kvH)⌋ (HF repeat_kv).
      const q5 = b.reshape(q, [0, kvH, H / kvH, -1, hd]);
      const k5 = b.unsqueeze(keys, [2]);
      const v5 = b.unsqueeze(values, [2]);
      const scores = b.add(b.mul(b.matmul(q5, b.transpose(k5, [0, 1, 2, 4, 3])), scale), b.unsqueeze(bias, [1]));
      context = b.reshape(b.matmul(b.op('Softmax', [scores], { axis: -1 }), v5), [0, H, -1, hd]);
    }
    return b.reshape(b.transpose(context, [0, 2, 1, 3]), [0, 0, H * hd]);
  }
}

function declareDecoderIO(w: DecoderWriter): void {
  const { b, cfg } = w;
  const hd = headDim(cfg);
  b.input('inputs_embeds', 'float32', [DIM_B, DIM_S, cfg.hiddenSize]);
  b.input('attention_mask', 'int64', [DIM_B, DIM_T]);
  b.input('position_ids', 'int64', [DIM_B, DIM_S]);
  for (let i = 0; i < cfg.numLayers; i++) {
    b.input(pastKeyName(i), 'float32', [DIM_B, cfg.numKvHeads, DIM_P, hd]);
    b.input(pastValueName(i), 'float32', [DIM_B, cfg.numKvHeads, DIM_P, hd]);
  }
  b.output('logits', 'float32', [DIM_B, DIM_S, cfg.vocabSize]);
  b.output('last_hidden_state', 'float32', [DIM_B, DIM_S, cfg.hiddenSize]);
  for (let i = 0; i < cfg.numLayers; i++) {
    b.output(presentKeyName(i), 'float32', [DIM_B, cfg.numKvHeads, DIM_T, hd]);
    b.output(presentValueName(i), 'float32', [DIM_B, cfg.numKvHeads, DIM_T, hd]);
  }
}

function writeGpt2(w: DecoderWriter, bias: string): string {
  const { b, cfg } = w;
  const D = cfg.hiddenSize;
  let x = b.add('inputs_embeds', b.op('Gather', ['wpe.weight', 'position_ids']));
  for (let i = 0; i < cfg.numLayers; i++) {
    const h = `h.${i}`;
    const qkv = w.linear(w.layerNorm(x, `${h}.ln_1`), `${h}.attn.c_attn`, { bias: true, conv1d: true });
    const [q, k, v] = b.opN('Split', [qkv, b.ints([D, D, D])], { axis: -1 }, 3);
    const H = cfg.numHeads;
    const attn = w.attention(i, w.splitHeads(q, H), w.splitHeads(k, H), w.splitHeads(v, H), bias);
    x = b.add(x, w.linear(attn, `${h}.attn.c_proj`, { bias: true, conv1d: true }));
    const fc = w.linear(w.layerNorm(x, `${h}.ln_2`), `${h}.mlp.c_fc`, { bias: true, conv1d: true });
    x = b.add(x, w.linear(w.geluTanh(fc), `${h}.mlp.c_proj`, { bias: true, conv1d: true }));
  }
  return w.layerNorm(x, 'ln_f', 'last_hidden_state');
}

function writeOpt(w: DecoderWriter, bias: string): string {
  const { b, cfg } = w;
  const positions = b.add('position_ids', b.scalar(OPT_POSITION_OFFSET, 'int64'));
  let x = b.add('inputs_embeds', b.op('Gather', ['embed_positions.weight', positions]));
  const H = cfg.numHeads;
  for (let i = 0; i < cfg.numLayers; i++) {
    const l = `layers.${i}`;
    const h = w.layerNorm(x, `${l}.self_attn_layer_norm`);
    const q = w.splitHeads(w.linear(h, `${l}.self_attn.q_proj`, { bias: true }), H);
    const k = w.splitHeads(w.linear(h, `${l}.self_attn.k_proj`, { bias: true }), H);
    const v = w.splitHeads(w.linear(h, `${l}.self_attn.v_proj`, { bias: true }), H);
    x = b.add(x, w.linear(w.attention(i, q, k, v, bias), `${l}.self_attn.out_proj`, { bias: true }));
    const fc1 = w.linear(w.layerNorm(x, `${l}.final_layer_norm`), `${l}.fc1`, { bias: true });
    x = b.add(x, w.linear(b.op('Relu', [fc1]), `${l}.fc2`, { bias: true }));
  }
  return w.layerNorm(x, 'final_layer_norm', 'last_hidden_state');
}

function writeLlama(w: DecoderWriter, bias: string): string {
  const { b, cfg } = w;
  const rope = w.ropeTables('position_ids');
  let x = 'inputs_embeds';
  for (let i = 0; i < cfg.numLayers; i++) {
    const l = `layers.${i}`;
    const h = w.rmsNorm(x, `${l}.input_layernorm.weight`);
    const qkvBias = cfg.attentionBias !== 'none';
    const q = w.applyRope(w.splitHeads(w.linear(h, `${l}.self_attn.q_proj`, { bias: qkvBias }), cfg.numHeads), rope);
    const k = w.applyRope(w.splitHeads(w.linear(h, `${l}.self_attn.k_proj`, { bias: qkvBias }), cfg.numKvHeads), rope);
    const v = w.splitHeads(w.linear(h, `${l}.self_attn.v_proj`, { bias: qkvBias }), cfg.numKvHeads);
    x = b.add(x, w.linear(w.attention(i, q, k, v, bias), `${l}.self_attn.o_proj`, { bias: cfg.attentionBias === 'all' }));
    const m = w.rmsNorm(x, `${l}.post_attention_layernorm.weight`);
    const gate = w.linear(m, `${l}.mlp.gate_proj`, { bias: false });
    const silu = b.mul(gate, b.op('Sigmoid', [gate]));
    const up = w.linear(m, `${l}.mlp.up_proj`, { bias: false });
    x = b.add(x, w.linear(b.mul(silu, up), `${l}.mlp.down_proj`, { bias: false }));
  }
  return w.rmsNorm(x, 'norm.weight', 'last_hidden_state');
}

/** Builds the decoder fragment for resolved dims, with the given (complete) weights. */
export function buildDecoderGraph(cfg: DecoderConfig, weights: Map<string, Tensor>): OnnxFragment {
  const graph = emptyGraph(`llm_decoder_${cfg.flavour}`);
  for (const [name, t] of weights) graph.initializers.set(name, t);
  const w = new DecoderWriter(graph, cfg);
  declareDecoderIO(w);
  const bias = w.attentionBias('inputs_embeds', 'attention_mask', pastKeyName(0));
  const writer = { gpt2: writeGpt2, opt: writeOpt, llama: writeLlama }[cfg.flavour];
  const hidden = writer(w, bias);
  const head = cfg.tieWordEmbeddings ? WORD_EMBEDDING : 'lm_head.weight';
  w.b.op('MatMul', [hidden, w.b.transpose(head, [1, 0])], {}, { outputs: ['logits'] });
  return { graph, opset: OPSET, weights: [...weights.keys()] };
}

export function buildDecoder(params: DecoderParamsInput, ctx: BuildContext): OnnxFragment {
  const what = `llm.decoder node '${ctx.nodeId}'`;
  const cfg = resolveDecoderConfig(params, what);
  return buildDecoderGraph(cfg, materializeWeights(decoderWeightSpecs(cfg), ctx, what));
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding lookup

export const EmbedParams = DecoderParams.pick({
  preset: true,
  flavour: true,
  vocab_size: true,
  hidden_size: true,
  init_std: true,
});
export type EmbedParamsInput = z.input<typeof EmbedParams>;

export function buildEmbedTokens(params: EmbedParamsInput, ctx: BuildContext): OnnxFragment {
  const what = `llm.embed_tokens node '${ctx.nodeId}'`;
  const cfg = resolveDecoderConfig(params, what);
  const weights = materializeWeights(embedWeightSpecs(cfg), ctx, what);
  const graph = emptyGraph('llm_embed_tokens');
  for (const [name, t] of weights) graph.initializers.set(name, t);
  const b = new GraphBuilder(graph);
  b.input('input_ids', 'int64', [DIM_B, DIM_S]);
  b.output('inputs_embeds', 'float32', [DIM_B, DIM_S, cfg.hiddenSize]);
  b.op('Gather', [WORD_EMBEDDING, 'input_ids'], {}, { outputs: ['inputs_embeds'] });
  return { graph, opset: OPSET, weights: [WORD_EMBEDDING] };
}

// ---------------------------------------------------------------------------------------------------------------
// Merging image features into the text sequence

export const MergeParams = z.object({
  mode: z.enum(['prefix', 'scatter']).default('prefix'),
  image_token_id: z.number().int().nonnegative().default(4),
  with_labels: z.boolean().default(false),
});
export type MergeParamsInput = z.input<typeof MergeParams>;

/**
 * Scatter mode needs at least as many image features per row as the row has `<image>` placeholders; onnxruntime
 * would only report an out-of-range GatherND index. The message names the node and both counts (a projector swapped for one
 * with another token count, e.g. a Q-Former's queries, needs the prompt's image token count changed with it).
 */
export function checkMergeInputs(params: MergeParamsInput, inputs: { image_features?: Tensor; input_ids?: Tensor }, what: string): void {
  const p = MergeParams.parse(params);
  if (p.mode !== 'scatter' || !inputs.image_features || !inputs.input_ids) return;
  const features = inputs.image_features.dims[1] ?? 0;
  const [rows, width] = [inputs.input_ids.dims[0] ?? 0, inputs.input_ids.dims[1] ?? 0];
  const ids = tensorToNumbers(inputs.input_ids);
  for (let r = 0; r < rows; r++) {
    let placeholders = 0;
    for (let j = 0; j < width; j++) if (ids[r * width + j] === p.image_token_id) placeholders++;
    // Fewer placeholders than features keeps the first ones (the templates' Compare relies on it; transformers
    // would refuse): only more placeholders than features cannot run.
    if (placeholders > features) {
      throw new LlmError(
        `${what}: row ${r} of the prompt has ${placeholders} image tokens (id ${p.image_token_id}) but the projector gives ${features} image features; ` +
          `give the prompt at most ${features} (e.g. the prompt node's image_tokens = ${features}) or use mode 'prefix'`,
      );
    }
  }
}

/** Label value the LM loss ignores (PyTorch CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

/**
 * prefix:  inputs_embeds = [image_features; token_embeds], attention_mask = [1…1; token_attention_mask]
 *          (BLIP-2, InstructBLIP, MiniGPT-4, Florence-2).
 * scatter: the k-th `<image>` placeholder of row b takes image_features[b, k] (LLaVA-1.5, PaliGemma; each row must
 *          hold exactly N placeholders); the mask is unchanged.
 * `text_mask` is 1 where a row came from a text token, 0 for image rows; with `with_labels`, `labels` aligns
 * `token_labels` to the merged sequence with −100 at image rows.
 */
export function buildMergeImageText(params: MergeParamsInput, ctx: BuildContext): OnnxFragment {
  const parsed = MergeParams.safeParse(params);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LlmError(`llm.merge_image_text node '${ctx.nodeId}': param '${issue?.path.join('.')}' ${issue?.message ?? 'is invalid'}`);
  }
  const p = parsed.data;
  const graph = emptyGraph('llm_merge_image_text');
  const b = new GraphBuilder(graph);
  const D: Dim = (ctx.inputShapes.token_embeds?.[2] as Dim | undefined) ?? 'hidden_size';
  b.input('image_features', 'float32', [DIM_B, 'image_sequence_length', D]);
  b.input('token_embeds', 'float32', [DIM_B, DIM_S, D]);
  b.input('token_attention_mask', 'int64', [DIM_B, DIM_S]);
  if (p.mode === 'scatter') b.input('input_ids', 'int64', [DIM_B, DIM_S]);
  if (p.with_labels) b.input('token_labels', 'int64', [DIM_B, DIM_S]);
  const merged = p.mode === 'prefix' ? 'image_sequence_length + sequence_length' : DIM_S;
  b.output('inputs_embeds', 'float32', [DIM_B, merged, D]);
  b.output('attention_mask', 'int64', [DIM_B, merged]);
  b.output('text_mask', 'int64', [DIM_B, merged]);
  if (p.with_labels) b.output('labels', 'int64', [DIM_B, merged]);

  if (p.mode === 'prefix') {
    // Ones shaped like the image rows: [B, N] from Shape(image_features)[0:2].
    const imageRows = b.op('ConstantOfShape', [b.op('Shape', ['image_features'], { start: 0, end: 2 })], {
      value: tensorFromNumbers('int64', [1], [1]),
    });
    const imageZeros = b.op('ConstantOfShape', [b.op('Shape', ['image_features'], { start: 0, end: 2 })], {
      value: tensorFromNumbers('int64', [1], [0]),
    });
    b.op('Concat', ['image_features', 'token_embeds'], { axis: 1 }, { outputs: ['inputs_embeds'] });
    b.op('Concat', [imageRows, 'token_attention_mask'], { axis: 1 }, { outputs: ['attention_mask'] });
    const textOnes = b.op('ConstantOfShape', [b.shape('token_attention_mask')], { value: tensorFromNumbers('int64', [1], [1]) });
    b.op('Concat', [imageZeros, textOnes], { axis: 1 }, { outputs: ['text_mask'] });
    if (p.with_labels) {
      const ignored = b.op('ConstantOfShape', [b.op('Shape', ['image_features'], { start: 0, end: 2 })], {
        value: tensorFromNumbers('int64', [1], [IGNORE_INDEX]),
      });
      b.op('Concat', [ignored, 'token_labels'], { axis: 1 }, { outputs: ['labels'] });
    }
  } else {
    const isImage = b.op('Equal', ['input_ids', b.scalar(p.image_token_id, 'int64')]); // [B,S]
    const isImageI64 = b.cast(isImage, 'int64');
    // k-th placeholder in its row → feature row k (clamped to 0 elsewhere; those rows are not used).
    const featureIndex = b.op('Max', [b.sub(b.op('CumSum', [isImageI64, b.scalar(1, 'int64')]), b.scalar(1, 'int64')), b.scalar(0, 'int64')]);
    const gathered = b.op('GatherND', ['image_features', b.unsqueeze(featureIndex, [2])], { batch_dims: 1 }); // [B,S,D]
    b.op('Where', [b.unsqueeze(isImage, [2]), gathered, 'token_embeds'], {}, { outputs: ['inputs_embeds'] });
    b.op('Identity', ['token_attention_mask'], {}, { outputs: ['attention_mask'] });
    b.op('Sub', [b.scalar(1, 'int64'), isImageI64], {}, { outputs: ['text_mask'] });
    if (p.with_labels) {
      b.op('Where', [isImage, b.scalar(IGNORE_INDEX, 'int64'), 'token_labels'], {}, { outputs: ['labels'] });
    }
  }
  return { graph, opset: OPSET, weights: [] };
}

// ---------------------------------------------------------------------------------------------------------------
// Node types

function decoderPorts(cfg: DecoderConfig | null): { inputs: PortSpec[]; outputs: PortSpec[] } {
  const D = cfg?.hiddenSize ?? 'D';
  const V = cfg?.vocabSize ?? 'V';
  const kvH = cfg?.numKvHeads ?? 'kvH';
  const hd = cfg ? headDim(cfg) : 'hd';
  const inputs: PortSpec[] = [
    { name: 'inputs_embeds', kind: 'embeds', shape: ['B', 'S', D], doc: 'Token (and image) embeddings of the new positions.' },
    { name: 'attention_mask', kind: 'mask', shape: ['B', 'P+S'], doc: 'Padding mask over past and new positions (1 = attend).' },
    { name: 'position_ids', kind: 'any', shape: ['B', 'S'], optional: true, doc: 'int64 positions of the new tokens: cumsum(mask) − 1, last S (computed from the mask when not connected).' },
  ];
  const outputs: PortSpec[] = [
    { name: 'logits', kind: 'logits', shape: ['B', 'S', V], doc: 'Next-token scores at every new position.' },
    { name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'S', D], doc: 'Final-norm hidden states (output projectors read these).' },
    { name: 'text', kind: 'text', doc: 'Generated answer (autoregressive decoding with the generation params).' },
    { name: 'generated_ids', kind: 'tokens', shape: ['B', 'G'], doc: 'Token ids of the generated answer (without the stop token).' },
  ];
  const layers = cfg?.numLayers ?? 1;
  for (let i = 0; i < layers; i++) {
    const which = cfg ? `${i}` : '{i}';
    for (const part of ['key', 'value']) {
      inputs.push({
        name: `past_key_values.${which}.${part}`,
        kind: 'kv',
        shape: ['B', kvH, 'P', hd],
        optional: true,
        doc: 'Cached keys/values of layer i; the generation loop feeds zero-length tensors (P = 0) on the first step.',
      });
      outputs.push({
        name: `present.${which}.${part}`,
        kind: 'kv',
        shape: ['B', kvH, 'P+S', hd],
        optional: true,
        doc: 'Past plus new keys/values of layer i (fed back as past on the next step).',
      });
    }
  }
  return { inputs, outputs };
}

function shapeDims(inputs: ResolvedShapes, port: string): { B: string | number; S: string | number } {
  const s = inputs[port];
  return { B: s?.[0] ?? 'B', S: s?.[1] ?? 'S' };
}

const decoderNode: NodeTypeDef<typeof DecoderParams> = {
  info: {
    type: 'llm.decoder',
    typeVersion: 1,
    family: 'llm',
    title: 'Decoder LLM',
    aliases: ['llm', 'decoder'],
    ...decoderPorts(null),
    doc: {
      summary:
        'A decoder-only language model (GPT-2, OPT or LLaMA flavour) that takes embeddings instead of token ids, so ' +
        'image features can sit in its input sequence. It returns next-token logits, its final hidden states and ' +
        'the key/value cache for fast generation.',
      usedBy: ['BLIP-2 (OPT-2.7B)', 'MiniGPT-4 (Vicuna-7B)', 'LLaVA-1.5 (Vicuna-7B)', 'InstructBLIP (Vicuna-7B)', 'NExT-GPT (Vicuna-7B)'],
      formula:
        'x ← inputs_embeds (+ positions); per layer: x += Attn(Norm(x)) with causal + padding mask; x += MLP(Norm(x)); ' +
        'logits = Norm(x)·Wᵀ',
      details:
        'Pre-norm blocks. gpt2: LayerNorm, fused c_attn, tanh-GELU MLP, learned positions, tied head. opt: LayerNorm, ' +
        'ReLU MLP, learned positions offset by 2, tied head. llama: RMSNorm, rotary positions (half-split, θ), SwiGLU ' +
        'MLP, no biases, untied head, grouped-query attention. The word embedding is `embed_tokens.weight`, shared ' +
        'with the Embed tokens node.',
    },
  },
  params: DecoderParams,
  paramDocs: DECODER_PARAM_DOCS,
  ports(params) {
    return decoderPorts(resolveDecoderConfig(params));
  },
  inputShapes(params) {
    const cfg = resolveDecoderConfig(params);
    return { inputs_embeds: ['B', 'S', cfg.hiddenSize], attention_mask: ['B', 'P+S'], position_ids: ['B', 'S'] };
  },
  outputShapes(params, inputs) {
    const cfg = resolveDecoderConfig(params);
    const { B, S } = shapeDims(inputs, 'inputs_embeds');
    const out: ResolvedShapes = { logits: [B, S, cfg.vocabSize], last_hidden_state: [B, S, cfg.hiddenSize] };
    for (let i = 0; i < cfg.numLayers; i++) {
      out[presentKeyName(i)] = [B, cfg.numKvHeads, 'P+S', headDim(cfg)];
      out[presentValueName(i)] = [B, cfg.numKvHeads, 'P+S', headDim(cfg)];
    }
    return out;
  },
  build: buildDecoder,
};

const embedNode: NodeTypeDef<typeof EmbedParams> = {
  info: {
    type: 'llm.embed_tokens',
    typeVersion: 1,
    family: 'llm',
    title: 'Embed tokens',
    aliases: ['embed_tokens'],
    inputs: [{ name: 'input_ids', kind: 'tokens', shape: ['B', 'S'], doc: 'int64 token ids.' }],
    outputs: [{ name: 'inputs_embeds', kind: 'embeds', shape: ['B', 'S', 'D'], doc: 'One embedding row per token.' }],
    doc: {
      summary:
        "Looks up each token id in the LLM's word-embedding table. Set the same preset/flavour/dims as the decoder: " +
        'the table (`embed_tokens.weight`) is the same tensor the decoder uses for its tied LM head.',
      usedBy: ['every VLM that feeds an LLM with inputs_embeds (LLaVA, BLIP-2, MiniGPT-4, Transformers.js embed_tokens.onnx)'],
      formula: 'inputs_embeds[b, s] = E[input_ids[b, s]]',
    },
  },
  params: EmbedParams,
  paramDocs: {
    preset: DECODER_PARAM_DOCS.preset,
    flavour: DECODER_PARAM_DOCS.flavour,
    vocab_size: DECODER_PARAM_DOCS.vocab_size,
    hidden_size: DECODER_PARAM_DOCS.hidden_size,
    init_std: DECODER_PARAM_DOCS.init_std,
  },
  outputShapes(params, inputs) {
    const cfg = resolveDecoderConfig(params);
    const { B, S } = shapeDims(inputs, 'input_ids');
    return { inputs_embeds: [B, S, cfg.hiddenSize] };
  },
  build: buildEmbedTokens,
};

const mergeNode: NodeTypeDef<typeof MergeParams> = {
  info: {
    type: 'llm.merge_image_text',
    typeVersion: 1,
    family: 'llm',
    title: 'Merge image + text',
    aliases: ['merge_image'],
    inputs: [
      { name: 'image_features', kind: 'embeds', shape: ['B', 'N', 'D'], doc: 'Projected image tokens in the LLM width.' },
      { name: 'token_embeds', kind: 'embeds', shape: ['B', 'S', 'D'], doc: 'Embedded prompt tokens.' },
      { name: 'token_attention_mask', kind: 'mask', shape: ['B', 'S'], doc: 'Padding mask of the prompt tokens.' },
      { name: 'input_ids', kind: 'tokens', shape: ['B', 'S'], optional: true, doc: "Prompt ids (mode 'scatter': finds the <image> placeholders)." },
      { name: 'token_labels', kind: 'tokens', shape: ['B', 'S'], optional: true, doc: 'Targets per prompt token (with_labels).' },
    ],
    outputs: [
      { name: 'inputs_embeds', kind: 'embeds', shape: ['B', 'T', 'D'], doc: 'The merged sequence for the LLM.' },
      { name: 'attention_mask', kind: 'mask', shape: ['B', 'T'], doc: 'Mask of the merged sequence (image rows are 1).' },
      { name: 'text_mask', kind: 'mask', shape: ['B', 'T'], doc: '1 where the row is a text token, 0 for image rows.' },
      { name: 'labels', kind: 'tokens', shape: ['B', 'T'], optional: true, doc: 'Targets aligned to the merged sequence, −100 at image rows.' },
    ],
    doc: {
      summary:
        "Puts image tokens into the LLM's input sequence: either before the text (prefix) or in place of <image> " +
        'placeholder tokens (scatter). Also aligns training labels so image rows are ignored by the loss.',
      usedBy: ['BLIP-2 / InstructBLIP / MiniGPT-4 (prefix)', 'LLaVA-1.5, PaliGemma (scatter)'],
      formula: 'prefix: [img; text], mask [1; m];  scatter: e[b, s] = img[b, k] where s is the k-th <image> of row b',
    },
  },
  params: MergeParams,
  paramDocs: {
    mode: "'prefix' concatenates image features before the text; 'scatter' replaces <image> placeholder tokens.",
    image_token_id: 'Token id of the <image> placeholder (scatter mode); 4 in the built-in tokenizer.',
    with_labels: 'Add the token_labels input and the labels output (−100 at image rows) for training.',
  },
  ports(params) {
    const p = MergeParams.parse(params);
    const all = mergeNode.info;
    return {
      inputs: all.inputs.filter(
        (s) => (s.name !== 'input_ids' || p.mode === 'scatter') && (s.name !== 'token_labels' || p.with_labels),
      ),
      outputs: all.outputs.filter((s) => s.name !== 'labels' || p.with_labels),
    };
  },
  outputShapes(params, inputs) {
    const p = MergeParams.parse(params);
    const img = inputs.image_features ?? ['B', 'N', 'D'];
    const txt = inputs.token_embeds ?? ['B', 'S', 'D'];
    const T =
      p.mode === 'scatter'
        ? txt[1]
        : typeof img[1] === 'number' && typeof txt[1] === 'number'
          ? img[1] + txt[1]
          : `${img[1]}+${txt[1]}`;
    const out: ResolvedShapes = {
      inputs_embeds: [txt[0], T, txt[2] ?? img[2]],
      attention_mask: [txt[0], T],
      text_mask: [txt[0], T],
    };
    if (p.with_labels) out.labels = [txt[0], T];
    return out;
  },
  build: buildMergeImageText,
};

export const nodeTypes: NodeTypeDef[] = [decoderNode, embedNode, mergeNode];
