// Modality encoders: CLIP ViT, EVA ViT, CLIP text, BERT, Whisper audio, SigLIP vision and text. Each builds a
// standalone ONNX fragment whose inputs and outputs are named after its ports, with weights named like the reference
// PyTorch state dicts (HF transformers for CLIP/SigLIP/BERT/Whisper, LAVIS for EVA), so real checkpoints load by name.

import { z } from 'zod';
import {
  type Scope,
  NodeBuildError,
  causalMask,
  closeScope,
  dimOf,
  embedding,
  expandToBatch,
  firstRows,
  gatherRows,
  init,
  isConnected,
  layerNorm,
  linear,
  mlp,
  openScope,
  paddingMask,
  attentionCore,
  portInput,
  portOutput,
  preNormLayer,
  bertAttention,
  bertFeedForward,
  sinusoidTable,
  sliceAxis,
  withOverrides,
  activation,
  ACTIVATIONS,
  type Activation,
} from './blocks.js';
import { BUILTIN_VOCAB_SIZE } from './llms.js';
import type { BuildContext, NodeTypeDef, OnnxFragment, PortSpec } from './types.js';

const BATCH = 'batch_size';
const posInt = () => z.number().int().positive().optional();

/** hidden_states index for a feature layer: −1 = last layer's output, −2 = penultimate, k ≥ 0 = hidden_states[k]. */
function hiddenIndex(featureLayer: number, layers: number, what: string): number {
  const k = featureLayer < 0 ? layers + 1 + featureLayer : featureLayer;
  if (k < 0 || k > layers) {
    throw new NodeBuildError(`${what}: feature_layer ${featureLayer} is outside the ${layers} layers (use −${layers + 1}…${layers})`);
  }
  return k;
}

function checkDivisible(what: string, width: number, heads: number): void {
  if (width % heads !== 0) throw new NodeBuildError(`${what}: hidden_size ${width} is not divisible by num_heads ${heads}`);
}

function patchCount(what: string, imageSize: number, patchSize: number): number {
  if (imageSize % patchSize !== 0) {
    throw new NodeBuildError(`${what}: image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  }
  return (imageSize / patchSize) ** 2;
}

/** An optional int64 [B, T] input (attention_mask, token_type_ids): a graph input only when the port is connected. */
function optionalTokens(s: Scope, ctx: BuildContext, port: string): string | undefined {
  return isConnected(ctx.inputShapes, port) ? portInput(s, port, 'int64', [BATCH, 'sequence_length']) : undefined;
}

/** Conv patch embedding: [B,3,H,W] → [B, N, D]. */
function patchEmbed(s: Scope, pixels: string, name: string, dim: number, patch: number, bias: boolean, std?: number): string {
  const fanIn = 3 * patch * patch;
  const w = s.p.weight(`${name}.weight`, [dim, 3, patch, patch], std === undefined ? init.kaimingUniform(fanIn) : init.normal(std));
  const inputs = [pixels, w];
  if (bias) inputs.push(s.p.weight(`${name}.bias`, [dim], init.uniform(1 / Math.sqrt(fanIn))));
  const conv = s.b.op('Conv', inputs, { kernel_shape: [patch, patch], strides: [patch, patch] });
  return s.b.transpose(s.b.reshape(conv, [0, dim, -1]), [0, 2, 1]);
}

const selectDoc = "'patch' drops the CLS token (LLaVA), 'cls_patch' keeps it (BLIP-2, MiniGPT-4).";

/** MLP activation names (HF `hidden_act`: gelu_pytorch_tanh and gelu_fast are the tanh formula, here gelu_new). */
const actParam = (fallback: (typeof ACTIVATIONS)[number]) => z.enum(ACTIVATIONS).default(fallback);
const ACT_DOC =
  'MLP activation: quick_gelu (x·σ(1.702x), OpenAI CLIP), gelu (exact erf), gelu_new (tanh approximation = HF ' +
  'gelu_new / gelu_pytorch_tanh / gelu_fast), relu, silu or tanh.';

/** The node's declared output ports less those its params switch off. */
function outputsWithout(outputs: PortSpec[], absent: Array<string | false>): PortSpec[] {
  return outputs.filter((o) => !absent.includes(o.name));
}

// ---------------------------------------------------------------------------------------------------------------
// encoder.clip_vit

const CLIP_VIT_PRESETS = {
  tiny: { image_size: 64, patch_size: 8, hidden_size: 64, num_layers: 2, num_heads: 4, intermediate_size: 256, projection_dim: 64 },
  'clip-vit-b-32': { image_size: 224, patch_size: 32, hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072, projection_dim: 512 },
  'clip-vit-b-16': { image_size: 224, patch_size: 16, hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072, projection_dim: 512 },
  'clip-vit-l-14': { image_size: 224, patch_size: 14, hidden_size: 1024, num_layers: 24, num_heads: 16, intermediate_size: 4096, projection_dim: 768 },
  'clip-vit-l-14-336': { image_size: 336, patch_size: 14, hidden_size: 1024, num_layers: 24, num_heads: 16, intermediate_size: 4096, projection_dim: 768 },
};
type VitDims = (typeof CLIP_VIT_PRESETS)['tiny'];

const clipVitParams = z.object({
  preset: z.enum(['tiny', 'clip-vit-b-32', 'clip-vit-b-16', 'clip-vit-l-14', 'clip-vit-l-14-336']).default('tiny'),
  image_size: posInt(),
  patch_size: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  projection_dim: posInt(),
  act: actParam('quick_gelu'),
  eps: z.number().positive().default(1e-5),
  feature_layer: z.number().int().default(-1),
  select: z.enum(['patch', 'cls_patch']).default('patch'),
  feature_norm: z.boolean().default(false),
  projection: z.boolean().default(true),
});
type ClipVitParams = z.infer<typeof clipVitParams>;

function clipVitDims(p: ClipVitParams): VitDims {
  return withOverrides(CLIP_VIT_PRESETS[p.preset], p);
}

/** Resolved dims of encoder.clip_vit params (preset + overrides) and its activation, for the Hugging Face export. */
export function clipVitDimsOf(params: unknown): VitDims & { act: string; eps: number } {
  const p = clipVitParams.parse(params);
  return { ...clipVitDims(p), act: p.act, eps: p.eps };
}

/** HF CLIP state-dict names of encoder layer `l` (shared by the vision and text towers). */
function clipLayerNames(l: string) {
  return {
    ln1: `${l}.layer_norm1`,
    attn: { q: `${l}.self_attn.q_proj`, k: `${l}.self_attn.k_proj`, v: `${l}.self_attn.v_proj`, out: `${l}.self_attn.out_proj` },
    ln2: `${l}.layer_norm2`,
    mlp: { fc1: `${l}.mlp.fc1`, fc2: `${l}.mlp.fc2` },
  };
}

/** HF CLIP initialisation of one encoder layer (q/k/v and fc2 scaled by depth, out_proj D^-0.5, fc1 (2D)^-0.5). */
function clipLayerInit(D: number, inStd: number) {
  return {
    q: init.normal(inStd),
    k: init.normal(inStd),
    v: init.normal(inStd),
    out: init.normal(D ** -0.5),
    fc1: init.normal((2 * D) ** -0.5),
    fc2: init.normal(inStd),
  };
}

function buildClipVit(p: ClipVitParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('encoder.clip_vit', ctx);
  const d = clipVitDims(p);
  checkDivisible(s.what, d.hidden_size, d.num_heads);
  const n = patchCount(s.what, d.image_size, d.patch_size);
  const k = hiddenIndex(p.feature_layer, d.num_layers, s.what);
  const D = d.hidden_size;
  const L = d.num_layers;
  const { b } = s;
  const pre = 'vision_model';

  const pixels = portInput(s, 'pixel_values', 'float32', [BATCH, 3, d.image_size, d.image_size]);
  const patches = patchEmbed(s, pixels, `${pre}.embeddings.patch_embedding`, D, d.patch_size, false, 0.02);
  const cls = s.p.weight(`${pre}.embeddings.class_embedding`, [D], init.normal(D ** -0.5));
  const pos = s.p.weight(`${pre}.embeddings.position_embedding.weight`, [n + 1, D], init.normal(0.02));
  let x = b.add(b.concat([expandToBatch(b, cls, pixels, 1, D), patches], 1), pos);
  x = layerNorm(s, x, `${pre}.pre_layrnorm`, D, p.eps);

  const inStd = D ** -0.5 * (2 * L) ** -0.5;
  const hidden = [x];
  for (let i = 0; i < L; i++) {
    const l = `${pre}.encoder.layers.${i}`;
    x = preNormLayer(
      s,
      x,
      clipLayerNames(l),
      {
        dim: D,
        heads: d.num_heads,
        mlpDim: d.intermediate_size,
        act: p.act,
        eps: p.eps,
        init: clipLayerInit(D, inStd),
      },
    );
    hidden.push(x);
  }

  // post_layernorm weights are created once and reused for the pooled CLS and (optionally) the selected features.
  const postW = s.p.weight(`${pre}.post_layernorm.weight`, [D], init.ones());
  const postB = s.p.weight(`${pre}.post_layernorm.bias`, [D], init.zeros());
  const postLn = (v: string) => b.op('LayerNormalization', [v, postW, postB], { axis: -1, epsilon: p.eps });
  const pooled = postLn(b.op('Gather', [x, b.scalar(0, 'int64')], { axis: 1 }));

  let feats = p.feature_norm ? postLn(hidden[k]) : hidden[k];
  if (p.select === 'patch') feats = sliceAxis(b, feats, 1, 1, Infinity);

  portOutput(s, 'last_hidden_state', x, [BATCH, n + 1, D]);
  portOutput(s, 'pooler_output', pooled, [BATCH, D]);
  if (p.projection) {
    const embeds = linear(s, pooled, 'visual_projection', D, d.projection_dim, { bias: false, weightInit: init.normal(D ** -0.5) });
    portOutput(s, 'image_embeds', embeds, [BATCH, d.projection_dim]);
  }
  portOutput(s, 'vision_features', feats, [BATCH, p.select === 'patch' ? n : n + 1, D]);
  return closeScope(s);
}

const clipVit: NodeTypeDef<typeof clipVitParams> = {
  info: {
    type: 'encoder.clip_vit',
    typeVersion: 1,
    family: 'encoder',
    title: 'CLIP ViT',
    aliases: ['clip_vit', 'vit'],
    inputs: [{ name: 'pixel_values', kind: 'image', shape: ['B', 3, 'H', 'W'], doc: 'Normalised RGB image (CLIP mean/std).' }],
    outputs: [
      { name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'N+1', 'D'], doc: 'Output of the last layer (CLS first), not post-normed.' },
      { name: 'pooler_output', kind: 'pooled', shape: ['B', 'D'], doc: 'post_layernorm(CLS).' },
      { name: 'image_embeds', kind: 'pooled', shape: ['B', 'P'], doc: 'visual_projection(pooler_output), not L2-normalised.' },
      {
        name: 'vision_features',
        kind: 'embeds',
        shape: ['B', 'N', 'D'],
        doc: 'Tokens for a projector: output of layer `feature_layer`, CLS dropped or kept by `select`.',
      },
    ],
    doc: {
      summary:
        'Vision Transformer as in OpenAI CLIP: non-overlapping patches → tokens, a learned CLS token and positions, ' +
        'pre-LayerNorm, then pre-LN transformer blocks with quick-GELU MLPs.',
      usedBy: ['CLIP', 'LLaVA-1.5 (ViT-L/14-336, layer −2, CLS dropped)', 'OpenFlamingo (ViT-L/14, post-LN patches)', 'mPLUG-Owl'],
      formula:
        'x₀ = LN_pre([cls; Conv_p(img)] + pos);  xᵢ = xᵢ₋₁ + MHA(LN₁ xᵢ₋₁);  xᵢ += MLP(LN₂ xᵢ);  ' +
        'pooler = LN_post(x_L[:,0]);  image_embeds = W_proj · pooler',
      details:
        'vision_features = hidden_states[feature_layer] (−1 = last layer, −2 = penultimate; 0 = embeddings after the ' +
        'pre-LN), optionally post-layernormed (feature_norm), with the CLS token dropped (select = patch) or kept.',
    },
  },
  params: clipVitParams,
  paramDocs: {
    preset: 'Dimensions to start from: tiny (64 px, patch 8, width 64, 2 layers) or a real CLIP checkpoint shape.',
    image_size: 'Input height = width in pixels (overrides the preset).',
    patch_size: 'Patch side in pixels; image_size must be a multiple of it.',
    hidden_size: 'Token width D.',
    num_layers: 'Number of transformer blocks.',
    num_heads: 'Attention heads; must divide hidden_size.',
    intermediate_size: 'MLP hidden width (4·D in CLIP).',
    projection_dim: 'Width of image_embeds (the CLIP joint space).',
    act: ACT_DOC,
    eps: 'LayerNorm epsilon.',
    feature_layer: 'Which hidden state vision_features takes: −1 last layer, −2 penultimate (LLaVA), k ≥ 0 = hidden_states[k].',
    select: `Token selection for vision_features: ${selectDoc}`,
    feature_norm: 'Apply post_layernorm to vision_features (OpenFlamingo, mPLUG-Owl use post-LN tokens).',
    projection:
      'Include visual_projection and the image_embeds output (CLIPModel, CLIPVisionModelWithProjection); off for a ' +
      'tower saved without it (CLIPVisionModel).',
  },
  inputShapes(p) {
    const d = clipVitDims(p);
    return { pixel_values: ['B', 3, d.image_size, d.image_size] };
  },
  outputShapes(p) {
    const d = clipVitDims(p);
    const n = (d.image_size / d.patch_size) ** 2;
    return {
      last_hidden_state: ['B', n + 1, d.hidden_size],
      pooler_output: ['B', d.hidden_size],
      ...(p.projection ? { image_embeds: ['B', d.projection_dim] } : {}),
      vision_features: ['B', p.select === 'patch' ? n : n + 1, d.hidden_size],
    };
  },
  ports(p) {
    return { inputs: clipVit.info.inputs, outputs: outputsWithout(clipVit.info.outputs, [!p.projection && 'image_embeds']) };
  },
  build: buildClipVit,
};

// ---------------------------------------------------------------------------------------------------------------
// encoder.eva_vit

const EVA_PRESETS = {
  tiny: { image_size: 64, patch_size: 8, hidden_size: 64, num_layers: 2, num_heads: 4, intermediate_size: 256 },
  'eva-vit-g': { image_size: 224, patch_size: 14, hidden_size: 1408, num_layers: 39, num_heads: 16, intermediate_size: 6144 },
  'eva-vit-g-448': { image_size: 448, patch_size: 14, hidden_size: 1408, num_layers: 39, num_heads: 16, intermediate_size: 6144 },
};
type EvaDims = (typeof EVA_PRESETS)['tiny'];

const evaParams = z.object({
  preset: z.enum(['tiny', 'eva-vit-g', 'eva-vit-g-448']).default('tiny'),
  image_size: posInt(),
  patch_size: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  eps: z.number().positive().default(1e-6),
  feature_layer: z.number().int().default(-1),
  select: z.enum(['patch', 'cls_patch']).default('cls_patch'),
  act: actParam('gelu'),
  qkv_bias: z.boolean().default(true),
  pooler_norm: z.boolean().default(false),
});
type EvaParams = z.infer<typeof evaParams>;

function evaDims(p: EvaParams): EvaDims {
  return withOverrides(EVA_PRESETS[p.preset], p);
}

/** Resolved encoder.eva_vit params (preset + overrides, defaults filled), for the Hugging Face export. */
export function evaVitDimsOf(params: unknown): EvaParams & EvaDims {
  const p = evaParams.parse(params);
  return { ...p, ...evaDims(p) };
}

/** EVA attention: fused qkv without bias plus separate q_bias / v_bias (k bias is zero), or no bias at all. */
function evaAttention(s: Scope, x: string, prefix: string, dim: number, heads: number, layerId: number, qkvBias: boolean): string {
  const { b } = s;
  const w = s.p.weight(`${prefix}.qkv.weight`, [3 * dim, dim], init.truncNormal(0.02));
  let qkv = b.matmul(x, b.transpose(w, [1, 0]));
  if (qkvBias) {
    const qBias = s.p.weight(`${prefix}.q_bias`, [dim], init.zeros());
    const vBias = s.p.weight(`${prefix}.v_bias`, [dim], init.zeros());
    const kBias = b.constant('float32', [dim], new Float32Array(dim), 'k_bias_zero');
    qkv = b.add(qkv, b.concat([qBias, kBias, vBias], 0));
  }
  const [q, k, v] = b.opN('Split', [qkv, b.ints([dim, dim, dim])], { axis: -1 }, 3);
  const ctx = attentionCore(b, q, k, v, { heads, headDim: dim / heads });
  return linear(s, ctx, `${prefix}.proj`, dim, dim, {
    weightInit: init.truncNormal(0.02 / Math.sqrt(2 * layerId)),
    biasInit: init.zeros(),
  });
}

function buildEva(p: EvaParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('encoder.eva_vit', ctx);
  const d = evaDims(p);
  checkDivisible(s.what, d.hidden_size, d.num_heads);
  const n = patchCount(s.what, d.image_size, d.patch_size);
  const k = hiddenIndex(p.feature_layer, d.num_layers, s.what);
  const D = d.hidden_size;
  const { b } = s;

  const pixels = portInput(s, 'pixel_values', 'float32', [BATCH, 3, d.image_size, d.image_size]);
  const patches = patchEmbed(s, pixels, 'patch_embed.proj', D, d.patch_size, true);
  const cls = s.p.weight('cls_token', [1, 1, D], init.truncNormal(0.02));
  const pos = s.p.weight('pos_embed', [1, n + 1, D], init.truncNormal(0.02));
  let x = b.add(b.concat([expandToBatch(b, cls, pixels, 1, D), patches], 1), pos);

  const hidden = [x];
  for (let i = 0; i < d.num_layers; i++) {
    const l = `blocks.${i}`;
    const layerId = i + 1;
    x = b.add(x, evaAttention(s, layerNorm(s, x, `${l}.norm1`, D, p.eps), `${l}.attn`, D, d.num_heads, layerId, p.qkv_bias));
    const h = layerNorm(s, x, `${l}.norm2`, D, p.eps);
    x = b.add(
      x,
      mlp(s, h, { fc1: `${l}.mlp.fc1`, fc2: `${l}.mlp.fc2` }, {
        dim: D,
        hidden: d.intermediate_size,
        act: p.act,
        fc1Init: init.truncNormal(0.02),
        fc2Init: init.truncNormal(0.02 / Math.sqrt(2 * layerId)),
      }),
    );
    hidden.push(x);
  }

  const lnW = s.p.weight('ln_vision.weight', [D], init.ones());
  const lnB = s.p.weight('ln_vision.bias', [D], init.zeros());
  const lnVision = (v: string) => b.op('LayerNormalization', [v, lnW, lnB], { axis: -1, epsilon: p.eps });
  const last = lnVision(x);
  let feats = k === d.num_layers ? last : lnVision(hidden[k]);
  if (p.select === 'patch') feats = sliceAxis(b, feats, 1, 1, Infinity);

  portOutput(s, 'last_hidden_state', last, [BATCH, n + 1, D]);
  portOutput(s, 'vision_features', feats, [BATCH, p.select === 'patch' ? n : n + 1, D]);
  const clsRow = b.op('Gather', [last, b.scalar(0, 'int64')], { axis: 1 });
  portOutput(s, 'pooler_output', p.pooler_norm ? lnVision(clsRow) : clsRow, [BATCH, D]);
  return closeScope(s);
}

const evaVit: NodeTypeDef<typeof evaParams> = {
  info: {
    type: 'encoder.eva_vit',
    typeVersion: 1,
    family: 'encoder',
    title: 'EVA ViT',
    aliases: ['eva_vit', 'eva'],
    inputs: [{ name: 'pixel_values', kind: 'image', shape: ['B', 3, 'H', 'W'], doc: 'Normalised RGB image.' }],
    outputs: [
      { name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'N+1', 'D'], doc: 'ln_vision(output of the last block), CLS first.' },
      { name: 'vision_features', kind: 'embeds', shape: ['B', 'N+1', 'D'], doc: 'ln_vision(hidden_states[feature_layer]) with CLS kept or dropped.' },
      {
        name: 'pooler_output', kind: 'pooled', shape: ['B', 'D'],
        doc: 'The CLS token of last_hidden_state: the pooled image embedding EVA-CLIP aligns with text (contrastive pre-training).',
      },
    ],
    doc: {
      summary:
        'EVA-CLIP vision transformer as used by BLIP-2: conv patch embedding with bias, CLS and learned positions, ' +
        'no pre-LayerNorm, pre-LN blocks whose attention has q and v biases only, plain GELU MLPs, and the trainable ' +
        'ln_vision LayerNorm on the output.',
      usedBy: ['BLIP-2', 'InstructBLIP', 'MiniGPT-4 (EVA ViT-g, 39 of 40 layers)', 'MiniGPT-v2 (448 px, CLS dropped)'],
      formula: 'x₀ = [cls; Conv_p(img)+b] + pos;  xᵢ = xᵢ₋₁ + Attn(LN₁ xᵢ₋₁) (bias = [q_bias, 0, v_bias]);  xᵢ += MLP(LN₂ xᵢ);  out = ln_vision(x_L)',
      details: 'Init as LAVIS: trunc-normal 0.02; attn.proj and mlp.fc2 weights divided by √(2·layer_id). LayerNorm eps 1e-6.',
    },
  },
  params: evaParams,
  paramDocs: {
    preset: 'tiny (64 px, patch 8, width 64, 2 layers) or the BLIP-2 EVA ViT-g shape (1408 wide, 39 layers, patch 14).',
    image_size: 'Input height = width in pixels.',
    patch_size: 'Patch side in pixels.',
    hidden_size: 'Token width D.',
    num_layers: 'Number of blocks (39 in BLIP-2: the last of EVA-g’s 40 is dropped).',
    num_heads: 'Attention heads.',
    intermediate_size: 'MLP hidden width (6144 for ViT-g).',
    eps: 'LayerNorm epsilon (1e-6 in EVA).',
    feature_layer: 'Which hidden state vision_features takes (−1 last, −2 penultimate, k ≥ 0 = hidden_states[k]); ln_vision is applied to it.',
    select: `Token selection for vision_features: ${selectDoc}`,
    act: `${ACT_DOC} EVA and BLIP-2 use gelu.`,
    qkv_bias: 'Learn q_bias and v_bias (HF Blip2VisionConfig qkv_bias); off = the fused qkv has no bias at all.',
    pooler_norm:
      "Apply ln_vision once more to the CLS row for pooler_output, as HF's Blip2VisionModel does (its post_layernorm " +
      'normalises the sequence, then the pooled row again); off = the CLS row of last_hidden_state (LAVIS).',
  },
  inputShapes(p) {
    const d = evaDims(p);
    return { pixel_values: ['B', 3, d.image_size, d.image_size] };
  },
  outputShapes(p) {
    const d = evaDims(p);
    const n = (d.image_size / d.patch_size) ** 2;
    return {
      last_hidden_state: ['B', n + 1, d.hidden_size],
      vision_features: ['B', p.select === 'patch' ? n : n + 1, d.hidden_size],
      pooler_output: ['B', d.hidden_size],
    };
  },
  build: buildEva,
};

// ---------------------------------------------------------------------------------------------------------------
// encoder.clip_text

type TextPooling = 'argmax' | 'eos_id' | 'last';

const CLIP_TEXT_PRESETS = {
  tiny: {
    vocab_size: BUILTIN_VOCAB_SIZE,
    max_positions: 77,
    hidden_size: 64,
    num_layers: 2,
    num_heads: 4,
    intermediate_size: 256,
    projection_dim: 64,
    pooling: 'eos_id' as TextPooling,
    eos_token_id: 2,
  },
  'clip-vit-b-32': { vocab_size: 49408, max_positions: 77, hidden_size: 512, num_layers: 12, num_heads: 8, intermediate_size: 2048, projection_dim: 512, pooling: 'argmax' as TextPooling, eos_token_id: 49407 },
  'clip-vit-l-14': { vocab_size: 49408, max_positions: 77, hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072, projection_dim: 768, pooling: 'argmax' as TextPooling, eos_token_id: 49407 },
};
type ClipTextDims = (typeof CLIP_TEXT_PRESETS)['tiny'];

const clipTextParams = z.object({
  preset: z.enum(['tiny', 'clip-vit-b-32', 'clip-vit-l-14']).default('tiny'),
  vocab_size: posInt(),
  max_positions: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  projection_dim: posInt(),
  act: actParam('quick_gelu'),
  eps: z.number().positive().default(1e-5),
  pooling: z.enum(['argmax', 'eos_id', 'last']).optional(),
  eos_token_id: z.number().int().nonnegative().optional(),
  projection: z.boolean().default(true),
});
type ClipTextParams = z.infer<typeof clipTextParams>;

function clipTextDims(p: ClipTextParams): ClipTextDims {
  return withOverrides(CLIP_TEXT_PRESETS[p.preset], p);
}

/** Resolved encoder.clip_text params (preset + overrides, defaults filled), for the Hugging Face export. */
export function clipTextDimsOf(params: unknown): ClipTextParams & ClipTextDims {
  const p = clipTextParams.parse(params);
  return { ...p, ...clipTextDims(p) };
}

/** Position of the pooled token per batch row [B] (int64). */
function poolIndex(s: Scope, ids: string, mask: string | undefined, p: ClipTextDims): string {
  const { b } = s;
  const firstMax = (v: string) => b.op('ArgMax', [b.cast(v, 'float32')], { axis: 1, keepdims: 0 });
  if (p.pooling === 'argmax') return firstMax(ids);
  if (p.pooling === 'eos_id') return firstMax(b.op('Equal', [ids, b.scalar(p.eos_token_id, 'int64')]));
  if (mask) return b.sub(b.reduceSum(mask, [1], false), b.scalar(1, 'int64'));
  const t = b.sub(dimOf(b, ids, 1), b.ints([1]));
  return b.op('Expand', [t, dimOf(b, ids, 0)]);
}

interface TextTowerDims {
  vocab_size: number;
  max_positions: number;
  hidden_size: number;
  num_layers: number;
  num_heads: number;
  intermediate_size: number;
}

/**
 * The CLIP / SigLIP text transformer under `text_model.`: token + learned position embeddings, pre-LN layers (causal
 * for CLIP, bidirectional for SigLIP; padding masked when a mask is given) and final_layer_norm → [B, T, D].
 */
function textTower(s: Scope, ids: string, mask: string | undefined, d: TextTowerDims, o: { act: Activation; eps: number; causal: boolean }): string {
  const D = d.hidden_size;
  const L = d.num_layers;
  const { b } = s;
  const pre = 'text_model';
  const tok = embedding(s, ids, `${pre}.embeddings.token_embedding`, d.vocab_size, D);
  const posTable = s.p.weight(`${pre}.embeddings.position_embedding.weight`, [d.max_positions, D], init.normal(0.02));
  let x = b.add(tok, firstRows(b, posTable, ids, 1));
  let additive = o.causal ? causalMask(b, x) : undefined;
  if (mask) additive = additive ? b.add(additive, paddingMask(b, mask)) : paddingMask(b, mask);

  const inStd = D ** -0.5 * (2 * L) ** -0.5;
  for (let i = 0; i < L; i++) {
    const l = `${pre}.encoder.layers.${i}`;
    x = preNormLayer(s, x, clipLayerNames(l), {
      dim: D,
      heads: d.num_heads,
      mlpDim: d.intermediate_size,
      act: o.act,
      eps: o.eps,
      mask: additive,
      init: clipLayerInit(D, inStd),
    });
  }
  return layerNorm(s, x, `${pre}.final_layer_norm`, D, o.eps);
}

function buildClipText(p: ClipTextParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('encoder.clip_text', ctx);
  const d = clipTextDims(p);
  checkDivisible(s.what, d.hidden_size, d.num_heads);
  const D = d.hidden_size;
  const { b } = s;

  const ids = portInput(s, 'input_ids', 'int64', [BATCH, 'sequence_length']);
  const mask = optionalTokens(s, ctx, 'attention_mask');
  const x = textTower(s, ids, mask, d, { act: p.act, eps: p.eps, causal: true });
  const pooled = gatherRows(b, x, poolIndex(s, ids, mask, d));

  portOutput(s, 'last_hidden_state', x, [BATCH, 'sequence_length', D]);
  portOutput(s, 'pooler_output', pooled, [BATCH, D]);
  if (p.projection) {
    const embeds = linear(s, pooled, 'text_projection', D, d.projection_dim, { bias: false, weightInit: init.normal(D ** -0.5) });
    portOutput(s, 'text_embeds', embeds, [BATCH, d.projection_dim]);
  }
  return closeScope(s);
}

const clipText: NodeTypeDef<typeof clipTextParams> = {
  info: {
    type: 'encoder.clip_text',
    typeVersion: 1,
    family: 'encoder',
    title: 'CLIP text encoder',
    aliases: ['clip_text'],
    inputs: [
      { name: 'input_ids', kind: 'tokens', shape: ['B', 'T'] },
      { name: 'attention_mask', kind: 'mask', shape: ['B', 'T'], optional: true, doc: 'Padding mask; optional because of the causal mask.' },
    ],
    outputs: [
      { name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'T', 'D'], doc: 'After final_layer_norm.' },
      { name: 'pooler_output', kind: 'pooled', shape: ['B', 'D'], doc: 'Hidden state at the EOS token.' },
      { name: 'text_embeds', kind: 'pooled', shape: ['B', 'P'], doc: 'text_projection(pooler_output), not L2-normalised.' },
    ],
    doc: {
      summary:
        'CLIP text transformer: token + learned position embeddings, causally masked pre-LN blocks, a final LayerNorm, ' +
        'pooling at the end-of-text token and a linear projection into the joint image-text space.',
      usedBy: ['CLIP', 'Stable Diffusion (conditioning)', 'open_clip EVA models'],
      formula: 'x = E[ids] + P[:T];  x = Blocks_causal(x);  h = LN_final(x);  pooled = h[b, eos_b];  text_embeds = W·pooled',
      details:
        'pooling: argmax = position of the largest id (legacy OpenAI configs, EOT is the largest id); eos_id = first ' +
        'position equal to eos_token_id (position 0 when there is none); last = last unpadded position (needs ' +
        'attention_mask, else T−1).',
    },
  },
  params: clipTextParams,
  paramDocs: {
    preset: 'tiny (built-in tokenizer vocabulary, width 64, 2 layers) or a real CLIP text tower shape.',
    vocab_size: 'Token vocabulary size; must cover the tokenizer’s ids.',
    max_positions: 'Context length (rows of the position table); 77 in CLIP.',
    hidden_size: 'Token width D.',
    num_layers: 'Number of blocks.',
    num_heads: 'Attention heads.',
    intermediate_size: 'MLP hidden width.',
    projection_dim: 'Width of text_embeds.',
    act: ACT_DOC,
    eps: 'LayerNorm epsilon.',
    projection:
      'Include text_projection and the text_embeds output (CLIPModel, CLIPTextModelWithProjection); off for a tower ' +
      'saved without it (CLIPTextModel, Stable Diffusion conditioning).',
    pooling:
      'Where pooler_output is taken: argmax of ids (CLIP presets), first eos_token_id (tiny: the built-in tokenizer’s </s>), ' +
      'or last unpadded token. Overrides the preset.',
    eos_token_id: "End-of-text id used when pooling = 'eos_id' (tiny: 2 = </s>; CLIP: 49407).",
  },
  outputShapes(p) {
    const d = clipTextDims(p);
    return {
      last_hidden_state: ['B', 'T', d.hidden_size],
      pooler_output: ['B', d.hidden_size],
      ...(p.projection ? { text_embeds: ['B', d.projection_dim] } : {}),
    };
  },
  ports(p) {
    return { inputs: clipText.info.inputs, outputs: outputsWithout(clipText.info.outputs, [!p.projection && 'text_embeds']) };
  },
  build: buildClipText,
};

// ---------------------------------------------------------------------------------------------------------------
// encoder.bert

const BERT_PRESETS = {
  tiny: { vocab_size: BUILTIN_VOCAB_SIZE, max_positions: 128, type_vocab_size: 2, hidden_size: 64, num_layers: 2, num_heads: 4, intermediate_size: 256 },
  'bert-base': { vocab_size: 30522, max_positions: 512, type_vocab_size: 2, hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072 },
};
type BertDims = (typeof BERT_PRESETS)['tiny'];

const bertParams = z.object({
  preset: z.enum(['tiny', 'bert-base']).default('tiny'),
  vocab_size: posInt(),
  max_positions: posInt(),
  type_vocab_size: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  eps: z.number().positive().default(1e-12),
  act: actParam('gelu'),
  pooler: z.boolean().default(true),
});
type BertParams = z.infer<typeof bertParams>;

function bertDims(p: BertParams): BertDims {
  return withOverrides(BERT_PRESETS[p.preset], p);
}

function buildBert(p: BertParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('encoder.bert', ctx);
  const d = bertDims(p);
  checkDivisible(s.what, d.hidden_size, d.num_heads);
  const D = d.hidden_size;
  const { b } = s;

  const ids = portInput(s, 'input_ids', 'int64', [BATCH, 'sequence_length']);
  const mask = optionalTokens(s, ctx, 'attention_mask');
  const types = optionalTokens(s, ctx, 'token_type_ids') ?? b.zerosLike(ids, 'int64');

  const words = embedding(s, ids, 'embeddings.word_embeddings', d.vocab_size, D);
  const posTable = s.p.weight('embeddings.position_embeddings.weight', [d.max_positions, D], init.normal(0.02));
  const typeEmb = embedding(s, types, 'embeddings.token_type_embeddings', d.type_vocab_size, D);
  let x = b.add(b.add(words, firstRows(b, posTable, ids, 1)), typeEmb);
  x = layerNorm(s, x, 'embeddings.LayerNorm', D, p.eps);
  const additive = mask ? paddingMask(b, mask) : undefined;

  for (let i = 0; i < d.num_layers; i++) {
    const l = `encoder.layer.${i}`;
    x = bertAttention(s, x, x, `${l}.attention`, { dim: D, heads: d.num_heads, eps: p.eps, mask: additive });
    x = bertFeedForward(s, x, { intermediate: `${l}.intermediate`, output: `${l}.output` }, { dim: D, hidden: d.intermediate_size, eps: p.eps, act: p.act });
  }
  portOutput(s, 'last_hidden_state', x, [BATCH, 'sequence_length', D]);
  if (p.pooler) {
    const cls = b.op('Gather', [x, b.scalar(0, 'int64')], { axis: 1 });
    const pooled = activation(b, linear(s, cls, 'pooler.dense', D, D, { weightInit: init.normal(0.02), biasInit: init.zeros() }), 'tanh');
    portOutput(s, 'pooler_output', pooled, [BATCH, D]);
  }
  return closeScope(s);
}

const bert: NodeTypeDef<typeof bertParams> = {
  info: {
    type: 'encoder.bert',
    typeVersion: 1,
    family: 'encoder',
    title: 'BERT encoder',
    aliases: ['bert'],
    inputs: [
      { name: 'input_ids', kind: 'tokens', shape: ['B', 'T'] },
      { name: 'attention_mask', kind: 'mask', shape: ['B', 'T'], optional: true, doc: 'Padding mask (1 = real token); all ones when absent.' },
      { name: 'token_type_ids', kind: 'tokens', shape: ['B', 'T'], optional: true, doc: 'Segment ids; zeros when absent.' },
    ],
    outputs: [
      { name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'T', 'D'] },
      { name: 'pooler_output', kind: 'pooled', shape: ['B', 'D'], doc: 'tanh(dense(CLS)).' },
    ],
    doc: {
      summary:
        'BERT: word + position + token-type embeddings and LayerNorm, then bidirectional post-LN layers ' +
        '(LN after each residual), padding-masked. Also the backbone of the BLIP-2 Q-Former.',
      usedBy: ['BLIP / BLIP-2 text encoder', 'Q-Former initialisation (bert-base-uncased)', 'retrieval models'],
      formula: 'x = LN(E_w[ids] + E_p[:T] + E_t[types]);  x = LN(x + Attn(x));  x = LN(x + W₂·GELU(W₁x));  pooler = tanh(W·x[:,0])',
    },
  },
  params: bertParams,
  paramDocs: {
    preset: 'tiny (built-in tokenizer vocabulary, width 64, 2 layers) or bert-base (768 wide, 12 layers, 12 heads).',
    vocab_size: 'Word vocabulary size.',
    max_positions: 'Rows of the absolute position table (512 in BERT).',
    type_vocab_size: 'Number of segment types.',
    hidden_size: 'Token width D.',
    num_layers: 'Number of layers.',
    num_heads: 'Attention heads.',
    intermediate_size: 'Feed-forward hidden width.',
    eps: 'LayerNorm epsilon (1e-12 in BERT).',
    act: `${ACT_DOC} BERT uses gelu.`,
    pooler: "Include the tanh pooler and the pooler_output output (BertModel's add_pooling_layer); off for a checkpoint without pooler.dense.",
  },
  outputShapes(p) {
    const d = bertDims(p);
    return { last_hidden_state: ['B', 'T', d.hidden_size], ...(p.pooler ? { pooler_output: ['B', d.hidden_size] } : {}) };
  },
  ports(p) {
    return { inputs: bert.info.inputs, outputs: outputsWithout(bert.info.outputs, [!p.pooler && 'pooler_output']) };
  },
  build: buildBert,
};

// ---------------------------------------------------------------------------------------------------------------
// encoder.whisper_audio

const WHISPER_PRESETS = {
  tiny: { num_mel_bins: 80, max_source_positions: 128, hidden_size: 64, num_layers: 2, num_heads: 4, intermediate_size: 256 },
  'whisper-tiny': { num_mel_bins: 80, max_source_positions: 1500, hidden_size: 384, num_layers: 4, num_heads: 6, intermediate_size: 1536 },
  'whisper-base': { num_mel_bins: 80, max_source_positions: 1500, hidden_size: 512, num_layers: 6, num_heads: 8, intermediate_size: 2048 },
  'whisper-small': { num_mel_bins: 80, max_source_positions: 1500, hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072 },
};
type WhisperDims = (typeof WHISPER_PRESETS)['tiny'];

const whisperParams = z.object({
  preset: z.enum(['tiny', 'whisper-tiny', 'whisper-base', 'whisper-small']).default('tiny'),
  num_mel_bins: posInt(),
  max_source_positions: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  eps: z.number().positive().default(1e-5),
});
type WhisperParams = z.infer<typeof whisperParams>;

function whisperDims(p: WhisperParams): WhisperDims {
  return withOverrides(WHISPER_PRESETS[p.preset], p);
}

function conv1d(s: Scope, x: string, name: string, cin: number, cout: number, stride: number): string {
  const w = s.p.weight(`${name}.weight`, [cout, cin, 3], init.normal(0.02));
  const bias = s.p.weight(`${name}.bias`, [cout], init.zeros());
  return s.b.op('Conv', [x, w, bias], { kernel_shape: [3], pads: [1, 1], strides: [stride] });
}

function buildWhisper(p: WhisperParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('encoder.whisper_audio', ctx);
  const d = whisperDims(p);
  checkDivisible(s.what, d.hidden_size, d.num_heads);
  const D = d.hidden_size;
  const { b } = s;

  const feats = portInput(s, 'input_features', 'float32', [BATCH, d.num_mel_bins, 'feature_length']);
  let h = activation(b, conv1d(s, feats, 'conv1', d.num_mel_bins, D, 1), 'gelu');
  h = activation(b, conv1d(s, h, 'conv2', D, D, 2), 'gelu');
  let x = b.transpose(h, [0, 2, 1]);
  const table = s.p.buffer('embed_positions.weight', [d.max_source_positions, D], init.values(() => sinusoidTable(d.max_source_positions, D)));
  x = b.add(x, firstRows(b, table, x, 1));

  const std = init.normal(0.02);
  for (let i = 0; i < d.num_layers; i++) {
    const l = `layers.${i}`;
    x = preNormLayer(
      s,
      x,
      {
        ln1: `${l}.self_attn_layer_norm`,
        attn: { q: `${l}.self_attn.q_proj`, k: `${l}.self_attn.k_proj`, v: `${l}.self_attn.v_proj`, out: `${l}.self_attn.out_proj` },
        ln2: `${l}.final_layer_norm`,
        mlp: { fc1: `${l}.fc1`, fc2: `${l}.fc2` },
      },
      {
        dim: D,
        heads: d.num_heads,
        mlpDim: d.intermediate_size,
        act: 'gelu',
        eps: p.eps,
        kBias: false,
        init: { q: std, k: std, v: std, out: std, fc1: std, fc2: std },
      },
    );
  }
  x = layerNorm(s, x, 'layer_norm', D, p.eps);
  portOutput(s, 'last_hidden_state', x, [BATCH, 'encoder_sequence_length', D]);
  return closeScope(s);
}

const whisperAudio: NodeTypeDef<typeof whisperParams> = {
  info: {
    type: 'encoder.whisper_audio',
    typeVersion: 1,
    family: 'encoder',
    title: 'Whisper audio encoder',
    aliases: ['whisper', 'whisper_audio'],
    inputs: [{ name: 'input_features', kind: 'audio', shape: ['B', 'M', 'F'], doc: 'Log-mel spectrogram [B, mels, frames].' }],
    outputs: [{ name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'F/2', 'D'], doc: 'One token per two frames, after the final LayerNorm.' }],
    doc: {
      summary:
        'Whisper-style audio encoder: two 1-D convolutions with GELU (the second halves the frame rate), fixed ' +
        'sinusoidal positions, pre-LN transformer layers (no key bias) and a final LayerNorm.',
      usedBy: ['Whisper', 'audio-language models (Qwen-Audio, SALMONN-style)'],
      formula: 'h = GELU(Conv1d_s2(GELU(Conv1d(mel))));  x = hᵀ + sin_pos[:F/2];  x = Blocks_preLN(x);  out = LN(x)',
      details: 'Frames may be any length up to 2·max_source_positions (Whisper pads audio to 3000 frames → 1500 tokens).',
    },
  },
  params: whisperParams,
  paramDocs: {
    preset: 'tiny (80 mels, width 64, 2 layers, up to 256 frames) or a real Whisper encoder shape.',
    num_mel_bins: 'Mel bins of the input (80; 128 for large-v3).',
    max_source_positions: 'Rows of the sinusoidal position table = max tokens after the stride-2 conv (1500 in Whisper).',
    hidden_size: 'Token width D.',
    num_layers: 'Number of layers.',
    num_heads: 'Attention heads.',
    intermediate_size: 'Feed-forward hidden width.',
    eps: 'LayerNorm epsilon.',
  },
  inputShapes(p) {
    return { input_features: ['B', whisperDims(p).num_mel_bins, 'F'] };
  },
  outputShapes(p, inputs) {
    const d = whisperDims(p);
    const frames = inputs.input_features?.[2];
    const tokens = typeof frames === 'number' ? Math.floor((frames - 1) / 2) + 1 : 'F/2';
    return { last_hidden_state: ['B', tokens, d.hidden_size] };
  },
  build: buildWhisper,
};

// ---------------------------------------------------------------------------------------------------------------
// encoder.siglip_vit

const SIGLIP_VIT_PRESETS = {
  tiny: { image_size: 64, patch_size: 8, hidden_size: 64, num_layers: 2, num_heads: 4, intermediate_size: 256 },
  'siglip-base-patch16-224': { image_size: 224, patch_size: 16, hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072 },
  'siglip-so400m-patch14-384': { image_size: 384, patch_size: 14, hidden_size: 1152, num_layers: 27, num_heads: 16, intermediate_size: 4304 },
};
type SiglipVitDims = (typeof SIGLIP_VIT_PRESETS)['tiny'];
const SIGLIP_PRESET_NAMES = ['tiny', 'siglip-base-patch16-224', 'siglip-so400m-patch14-384'] as const;

const siglipVitParams = z.object({
  preset: z.enum(SIGLIP_PRESET_NAMES).default('tiny'),
  image_size: posInt(),
  patch_size: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  act: actParam('gelu_new'),
  eps: z.number().positive().default(1e-6),
  feature_layer: z.number().int().default(-1),
  feature_norm: z.boolean().default(true),
  use_head: z.boolean().default(true),
});
type SiglipVitParams = z.infer<typeof siglipVitParams>;

function siglipVitDims(p: SiglipVitParams): SiglipVitDims {
  return withOverrides(SIGLIP_VIT_PRESETS[p.preset], p);
}

/** Resolved encoder.siglip_vit params (preset + overrides, defaults filled), for the Hugging Face export. */
export function siglipVitDimsOf(params: unknown): SiglipVitParams & SiglipVitDims {
  const p = siglipVitParams.parse(params);
  return { ...p, ...siglipVitDims(p) };
}

/** Patches of the 'valid' (unpadded) patch convolution: pixels past the last whole patch are dropped (so400m/14 at 384 px → 27×27). */
function siglipPatches(d: SiglipVitDims): number {
  return Math.floor(d.image_size / d.patch_size) ** 2;
}

/**
 * SigLIP's multi-head attention pooling (MAP) head: a learned probe attends to all tokens through an
 * nn.MultiheadAttention (fused in_proj), then a pre-LN MLP with a residual; the probe's row is the pooled embedding.
 */
function mapHead(s: Scope, x: string, h: string, d: { dim: number; heads: number; mlpDim: number; act: Activation; eps: number }): string {
  const { b } = s;
  const D = d.dim;
  const probe = expandToBatch(b, s.p.weight(`${h}.probe`, [1, 1, D], init.normal(D ** -0.5)), x, 1, D);
  const inW = s.p.weight(`${h}.attention.in_proj_weight`, [3 * D, D], init.normal(D ** -0.5));
  const inB = s.p.weight(`${h}.attention.in_proj_bias`, [3 * D], init.zeros());
  const [wq, wk, wv] = b.opN('Split', [inW, b.ints([D, D, D])], { axis: 0 }, 3);
  const [bq, bk, bv] = b.opN('Split', [inB, b.ints([D, D, D])], { axis: 0 }, 3);
  const proj = (v: string, w: string, bias: string) => b.add(b.matmul(v, b.transpose(w, [1, 0])), bias);
  const ctx = attentionCore(b, proj(probe, wq, bq), proj(x, wk, bk), proj(x, wv, bv), { heads: d.heads, headDim: D / d.heads });
  const attended = linear(s, ctx, `${h}.attention.out_proj`, D, D, { biasInit: init.zeros() });
  const normed = layerNorm(s, attended, `${h}.layernorm`, D, d.eps);
  const out = b.add(attended, mlp(s, normed, { fc1: `${h}.mlp.fc1`, fc2: `${h}.mlp.fc2` }, { dim: D, hidden: d.mlpDim, act: d.act }));
  return b.op('Gather', [out, b.scalar(0, 'int64')], { axis: 1 });
}

function buildSiglipVit(p: SiglipVitParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('encoder.siglip_vit', ctx);
  const d = siglipVitDims(p);
  checkDivisible(s.what, d.hidden_size, d.num_heads);
  const n = siglipPatches(d);
  const k = hiddenIndex(p.feature_layer, d.num_layers, s.what);
  const D = d.hidden_size;
  const L = d.num_layers;
  const { b } = s;
  const pre = 'vision_model';

  const pixels = portInput(s, 'pixel_values', 'float32', [BATCH, 3, d.image_size, d.image_size]);
  const patches = patchEmbed(s, pixels, `${pre}.embeddings.patch_embedding`, D, d.patch_size, true);
  let x = b.add(patches, s.p.weight(`${pre}.embeddings.position_embedding.weight`, [n, D], init.normal(D ** -0.5)));
  const inStd = D ** -0.5 * (2 * L) ** -0.5;
  const hidden = [x];
  for (let i = 0; i < L; i++) {
    x = preNormLayer(s, x, clipLayerNames(`${pre}.encoder.layers.${i}`), {
      dim: D,
      heads: d.num_heads,
      mlpDim: d.intermediate_size,
      act: p.act,
      eps: p.eps,
      init: clipLayerInit(D, inStd),
    });
    hidden.push(x);
  }
  const postW = s.p.weight(`${pre}.post_layernorm.weight`, [D], init.ones());
  const postB = s.p.weight(`${pre}.post_layernorm.bias`, [D], init.zeros());
  const postLn = (v: string) => b.op('LayerNormalization', [v, postW, postB], { axis: -1, epsilon: p.eps });
  const last = postLn(x);
  const feats = p.feature_norm ? (k === L ? last : postLn(hidden[k])) : hidden[k];

  portOutput(s, 'last_hidden_state', last, [BATCH, n, D]);
  if (p.use_head) {
    const pooled = mapHead(s, last, `${pre}.head`, { dim: D, heads: d.num_heads, mlpDim: d.intermediate_size, act: p.act, eps: p.eps });
    portOutput(s, 'pooler_output', pooled, [BATCH, D]);
  }
  portOutput(s, 'vision_features', feats, [BATCH, n, D]);
  return closeScope(s);
}

const siglipVit: NodeTypeDef<typeof siglipVitParams> = {
  info: {
    type: 'encoder.siglip_vit',
    typeVersion: 1,
    family: 'encoder',
    title: 'SigLIP ViT',
    aliases: ['siglip_vit', 'siglip'],
    inputs: [{ name: 'pixel_values', kind: 'image', shape: ['B', 3, 'H', 'W'], doc: 'RGB image normalised to [−1, 1] (mean = std = 0.5).' }],
    outputs: [
      { name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'N', 'D'], doc: 'post_layernorm(output of the last layer): one token per patch, no CLS.' },
      {
        name: 'pooler_output',
        kind: 'pooled',
        shape: ['B', 'D'],
        doc: 'Attention-pooling head over last_hidden_state: the image embedding SigLIP compares with text (not L2-normalised).',
      },
      {
        name: 'vision_features',
        kind: 'embeds',
        shape: ['B', 'N', 'D'],
        doc: 'Tokens for a projector: hidden_states[feature_layer], post-layernormed when feature_norm (PaliGemma, Idefics3).',
      },
    ],
    doc: {
      summary:
        'SigLIP vision transformer: conv patch embedding with bias and learned positions (no CLS token, no pre-LayerNorm), ' +
        'pre-LN blocks with tanh-GELU MLPs, a post LayerNorm, and a multi-head attention pooling head (a learned probe ' +
        'attends to every token) that gives the pooled image embedding. Trained with a sigmoid loss against SigLIP text.',
      usedBy: ['SigLIP', 'PaliGemma (so400m/14, 224–896 px)', 'LLaVA-OneVision', 'Idefics3 / SmolVLM', 'many open VLMs'],
      formula:
        'x₀ = Conv_p(img)+b + pos;  xᵢ = xᵢ₋₁ + MHA(LN₁ xᵢ₋₁);  xᵢ += MLP(LN₂ xᵢ);  h = LN_post(x_L);  ' +
        'a = MHA(probe, h, h);  pooler = (a + MLP(LN(a)))[:, 0]',
      details:
        'Weights are named as HF SiglipVisionModel (vision_model.embeddings.patch_embedding, vision_model.encoder.layers.i.' +
        '{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}, vision_model.post_layernorm, ' +
        'vision_model.head.{probe, attention.in_proj_weight/in_proj_bias/out_proj, layernorm, mlp}). LayerNorm eps 1e-6.',
    },
  },
  params: siglipVitParams,
  paramDocs: {
    preset: 'tiny (64 px, patch 8, width 64, 2 layers) or a real SigLIP tower shape (base/16 at 224 px, so400m/14 at 384 px).',
    image_size: 'Input height = width in pixels (overrides the preset).',
    patch_size: 'Patch side in pixels; pixels past the last whole patch are dropped, as the unpadded convolution does (384 px / 14 → 27 patches a side).',
    hidden_size: 'Token width D.',
    num_layers: 'Number of transformer blocks.',
    num_heads: 'Attention heads (also of the pooling head); must divide hidden_size.',
    intermediate_size: 'MLP hidden width (also of the pooling head).',
    act: `${ACT_DOC} SigLIP uses gelu_new (gelu_pytorch_tanh).`,
    eps: 'LayerNorm epsilon (1e-6 in SigLIP).',
    feature_layer: 'Which hidden state vision_features takes: −1 last layer, −2 penultimate, k ≥ 0 = hidden_states[k] (0 = embeddings).',
    feature_norm:
      'Apply post_layernorm to vision_features (on by default: with feature_layer −1 that is last_hidden_state, what ' +
      'PaliGemma and Idefics3 feed their projector; LLaVA-OneVision takes hidden_states[−1] without it).',
    use_head: 'Include the attention-pooling head and pooler_output (HF vision_use_head); off for towers saved without it.',
  },
  inputShapes(p) {
    const d = siglipVitDims(p);
    return { pixel_values: ['B', 3, d.image_size, d.image_size] };
  },
  outputShapes(p) {
    const d = siglipVitDims(p);
    const n = siglipPatches(d);
    return {
      last_hidden_state: ['B', n, d.hidden_size],
      ...(p.use_head ? { pooler_output: ['B', d.hidden_size] } : {}),
      vision_features: ['B', n, d.hidden_size],
    };
  },
  ports(p) {
    return { inputs: siglipVit.info.inputs, outputs: outputsWithout(siglipVit.info.outputs, [!p.use_head && 'pooler_output']) };
  },
  build: buildSiglipVit,
};

// ---------------------------------------------------------------------------------------------------------------
// encoder.siglip_text

const SIGLIP_TEXT_PRESETS = {
  tiny: { vocab_size: BUILTIN_VOCAB_SIZE, max_positions: 64, hidden_size: 64, num_layers: 2, num_heads: 4, intermediate_size: 256, projection_size: 64 },
  'siglip-base-patch16-224': { vocab_size: 32000, max_positions: 64, hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072, projection_size: 768 },
  'siglip-so400m-patch14-384': { vocab_size: 32000, max_positions: 64, hidden_size: 1152, num_layers: 27, num_heads: 16, intermediate_size: 4304, projection_size: 1152 },
};
type SiglipTextDims = (typeof SIGLIP_TEXT_PRESETS)['tiny'];

const siglipTextParams = z.object({
  preset: z.enum(SIGLIP_PRESET_NAMES).default('tiny'),
  vocab_size: posInt(),
  max_positions: posInt(),
  hidden_size: posInt(),
  num_layers: posInt(),
  num_heads: posInt(),
  intermediate_size: posInt(),
  projection_size: posInt(),
  act: actParam('gelu_new'),
  eps: z.number().positive().default(1e-6),
});
type SiglipTextParams = z.infer<typeof siglipTextParams>;

function siglipTextDims(p: SiglipTextParams): SiglipTextDims {
  return withOverrides(SIGLIP_TEXT_PRESETS[p.preset], p);
}

/** Resolved encoder.siglip_text params (preset + overrides, defaults filled), for the Hugging Face export. */
export function siglipTextDimsOf(params: unknown): SiglipTextParams & SiglipTextDims {
  const p = siglipTextParams.parse(params);
  return { ...p, ...siglipTextDims(p) };
}

function buildSiglipText(p: SiglipTextParams, ctx: BuildContext): OnnxFragment {
  const s = openScope('encoder.siglip_text', ctx);
  const d = siglipTextDims(p);
  checkDivisible(s.what, d.hidden_size, d.num_heads);
  const D = d.hidden_size;
  const { b } = s;
  const ids = portInput(s, 'input_ids', 'int64', [BATCH, 'sequence_length']);
  const mask = optionalTokens(s, ctx, 'attention_mask');
  const x = textTower(s, ids, mask, d, { act: p.act, eps: p.eps, causal: false });
  const lastRow = b.op('Gather', [x, b.scalar(-1, 'int64')], { axis: 1 });
  const pooled = linear(s, lastRow, 'text_model.head', D, d.projection_size, { weightInit: init.normal(D ** -0.5), biasInit: init.zeros() });
  portOutput(s, 'last_hidden_state', x, [BATCH, 'sequence_length', D]);
  portOutput(s, 'pooler_output', pooled, [BATCH, d.projection_size]);
  return closeScope(s);
}

const siglipText: NodeTypeDef<typeof siglipTextParams> = {
  info: {
    type: 'encoder.siglip_text',
    typeVersion: 1,
    family: 'encoder',
    title: 'SigLIP text encoder',
    aliases: ['siglip_text'],
    inputs: [
      { name: 'input_ids', kind: 'tokens', shape: ['B', 'T'], doc: "Token ids padded to max_length (64), as SigLIP's processor does." },
      {
        name: 'attention_mask',
        kind: 'mask',
        shape: ['B', 'T'],
        optional: true,
        doc: 'Padding mask; SigLIP was trained without one (its processor returns none), so leave it unconnected.',
      },
    ],
    outputs: [
      { name: 'last_hidden_state', kind: 'embeds', shape: ['B', 'T', 'D'], doc: 'After final_layer_norm.' },
      { name: 'pooler_output', kind: 'pooled', shape: ['B', 'P'], doc: 'head(last position): the text embedding SigLIP compares with images (not L2-normalised).' },
    ],
    doc: {
      summary:
        'SigLIP text transformer: CLIP-like token and position embeddings and pre-LN blocks, but bidirectional (no causal ' +
        'mask), tanh-GELU MLPs, pooled at the last position (the processor pads to 64 tokens) and projected by a Linear ' +
        'head with bias.',
      usedBy: ['SigLIP (zero-shot classification, retrieval)'],
      formula: 'x = E[ids] + P[:T];  x = Blocks(x);  h = LN_final(x);  pooler = W·h[:, T−1] + b',
      details:
        'Weights are named as HF SiglipTextModel (text_model.embeddings.{token,position}_embedding, text_model.encoder.' +
        'layers.i.*, text_model.final_layer_norm, text_model.head). Feed the ids padded to max_length: the pooled ' +
        'position is always the last one.',
    },
  },
  params: siglipTextParams,
  paramDocs: {
    preset: 'tiny (built-in tokenizer vocabulary, width 64, 2 layers) or a real SigLIP text tower shape.',
    vocab_size: 'Token vocabulary size; must cover the tokenizer’s ids.',
    max_positions: 'Rows of the position table = the padded text length (64 in SigLIP).',
    hidden_size: 'Token width D.',
    num_layers: 'Number of blocks.',
    num_heads: 'Attention heads.',
    intermediate_size: 'MLP hidden width.',
    projection_size: 'Width of pooler_output (the head; HF projection_size, = hidden_size in SigLIP 1).',
    act: `${ACT_DOC} SigLIP uses gelu_new (gelu_pytorch_tanh).`,
    eps: 'LayerNorm epsilon (1e-6 in SigLIP).',
  },
  outputShapes(p) {
    const d = siglipTextDims(p);
    return { last_hidden_state: ['B', 'T', d.hidden_size], pooler_output: ['B', d.projection_size] };
  },
  build: buildSiglipText,
};

export const nodeTypes: NodeTypeDef[] = [clipVit, evaVit, clipText, bert, whisperAudio, siglipVit, siglipText];

