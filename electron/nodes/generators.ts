// Generators: the conditional UNet that turns noise plus conditioning into an image (ε prediction).
//
// `generator.unet` follows diffusers' UNet2DConditionModel (research/vlm-components.md §4.4): the same blocks, the
// same forward order and the same state-dict names, so the 'sd15' preset has Stable Diffusion 1.5's exact shapes
// and diffusers weights load by name. The 'tiny' preset is a pixel-space UNet at 32×32×3.
//
// GroupNorm is written as Reshape → ReduceMean/Sub/Mul/Sqrt/Div → Reshape → affine, all opset-17 ops with plain
// VJPs (GroupNormalization needs opset 18/21 and its gradient would be one more special rule). Nearest ×2
// upsampling is Unsqueeze → Expand → Reshape (Expand's gradient is a ReduceSum) instead of Resize.

import { z } from 'zod';
import type { GraphBuilder } from '../onnx/builder.js';
import {
  FRAGMENT_OPSET,
  type MetaBuildContext,
  NodeBuildError,
  type Scope,
  activation,
  attention,
  attentionCore,
  closeScope,
  init,
  layerNorm,
  linear,
  openScope,
  parameterCount,
  portInput,
  portOutput,
  sliceAxis,
  withOverrides,
} from './blocks.js';
import type { BuildContext, NodeTypeDef, OnnxFragment, ResolvedShapes } from './types.js';

const DOWN_BLOCK_TYPES = ['CrossAttnDownBlock2D', 'DownBlock2D'] as const;

interface UnetDims {
  in_channels: number;
  out_channels: number;
  sample_size: number;
  block_out_channels: number[];
  layers_per_block: number;
  down_block_types: Array<(typeof DOWN_BLOCK_TYPES)[number]>;
  mid_block: boolean;
  attention_heads: number;
  cross_attention_dim: number;
  norm_num_groups: number;
  norm_eps: number;
  addition_embed_type: 'none' | 'text';
  addition_embed_type_num_heads: number;
}

export const UNET_PRESETS: Record<'tiny' | 'sd15', UnetDims> = {
  tiny: {
    in_channels: 3,
    out_channels: 3,
    sample_size: 32,
    block_out_channels: [32, 64],
    layers_per_block: 1,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    mid_block: true,
    attention_heads: 4,
    cross_attention_dim: 64,
    norm_num_groups: 8,
    norm_eps: 1e-5,
    addition_embed_type: 'none',
    addition_embed_type_num_heads: 64,
  },
  sd15: {
    in_channels: 4,
    out_channels: 4,
    sample_size: 64,
    block_out_channels: [320, 640, 1280, 1280],
    layers_per_block: 2,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    mid_block: true,
    attention_heads: 8,
    cross_attention_dim: 768,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    addition_embed_type: 'none',
    addition_embed_type_num_heads: 64,
  },
};

const posInt = z.number().int().min(1);

export const UnetParams = z
  .object({
    preset: z.enum(['tiny', 'sd15']).default('tiny'),
    in_channels: posInt.optional(),
    out_channels: posInt.optional(),
    sample_size: posInt.optional(),
    block_out_channels: z.array(posInt).min(1).max(6).optional(),
    layers_per_block: posInt.max(8).optional(),
    down_block_types: z.array(z.enum(DOWN_BLOCK_TYPES)).min(1).max(6).optional(),
    mid_block: z.boolean().optional(),
    attention_heads: posInt.optional(),
    cross_attention_dim: z.union([posInt, z.literal('auto')]).default('auto'),
    norm_num_groups: posInt.optional(),
    norm_eps: z.number().positive().optional(),
    addition_embed_type: z.enum(['none', 'text']).optional(),
    addition_embed_type_num_heads: posInt.optional(),
  })
  .strict();
export type UnetParams = z.infer<typeof UnetParams>;

const unetParamDocs: Record<string, string> = {
  preset: "Dimension preset: 'tiny' (pixel space 32×32×3, widths 32/64) or 'sd15' (Stable Diffusion 1.5: 4 latent channels, 64×64, widths 320/640/1280/1280, ≈860M parameters).",
  in_channels: 'Channels of `sample` (3 for pixel space, 4 for SD latents). Default: from the preset.',
  out_channels: 'Channels of `out_sample` (the ε prediction). Default: from the preset.',
  sample_size: 'Nominal height and width of `sample` (any size divisible by 2^(levels−1) runs). Default: from the preset.',
  block_out_channels: 'Width of each resolution level, top first; every level but the last halves the resolution. Overrides the preset.',
  layers_per_block: 'ResNet (+ Transformer2D) layers per down level; up levels get one more. Overrides the preset.',
  down_block_types: "Per level: 'CrossAttnDownBlock2D' (ResNets with Transformer2D cross-attention) or 'DownBlock2D' (ResNets only). Up levels mirror them. Overrides the preset.",
  mid_block: 'Add the middle block (ResNet, Transformer2D, ResNet) at the lowest resolution. Overrides the preset.',
  attention_heads: 'Attention heads in every Transformer2D (diffusers calls this attention_head_dim; SD 1.5 uses 8). Overrides the preset.',
  cross_attention_dim: "Width of `encoder_hidden_states`; 'auto' takes it from the connected conditioning.",
  norm_num_groups: 'GroupNorm groups (32 in Stable Diffusion); must divide every level width. Overrides the preset.',
  norm_eps: 'GroupNorm epsilon of the ResNets and the output norm (Transformer2D norms use 1e-6 as in diffusers). Overrides the preset.',
  addition_embed_type:
    "'text' adds a pooled summary of the conditioning to the timestep embedding (diffusers' TextTimeEmbedding: LayerNorm → " +
    'attention pooling → Linear → LayerNorm), so every ResNet at every resolution sees it, not only the cross-attention ' +
    "levels; small UNets learn to follow global attributes (colour, shape) much sooner. 'none' (Stable Diffusion) by default.",
  addition_embed_type_num_heads: 'Heads of the attention pooling (diffusers default 64); must divide cross_attention_dim.',
};

export type ResolvedUnet = UnetDims;

export function resolveUnet(p: UnetParams, inputs: ResolvedShapes, what = 'generator.unet'): ResolvedUnet {
  const { preset, cross_attention_dim, ...overrides } = p;
  const r = withOverrides(UNET_PRESETS[preset], { ...overrides, cross_attention_dim: undefined });
  if (cross_attention_dim !== 'auto') r.cross_attention_dim = cross_attention_dim;
  else {
    const d = inputs.encoder_hidden_states?.[2];
    if (typeof d === 'number') r.cross_attention_dim = d;
  }
  const levels = r.block_out_channels.length;
  if (r.down_block_types.length !== levels) {
    throw new NodeBuildError(`${what}: down_block_types has ${r.down_block_types.length} entries but block_out_channels has ${levels}`);
  }
  for (const c of r.block_out_channels) {
    if (c % r.norm_num_groups !== 0) throw new NodeBuildError(`${what}: level width ${c} is not divisible by norm_num_groups ${r.norm_num_groups}`);
    if (c % r.attention_heads !== 0) throw new NodeBuildError(`${what}: level width ${c} is not divisible by attention_heads ${r.attention_heads}`);
  }
  if (r.addition_embed_type === 'text' && r.cross_attention_dim % r.addition_embed_type_num_heads !== 0) {
    throw new NodeBuildError(
      `${what}: cross_attention_dim ${r.cross_attention_dim} is not divisible by addition_embed_type_num_heads ${r.addition_embed_type_num_heads}`,
    );
  }
  if (r.block_out_channels[0] % 2 !== 0) throw new NodeBuildError(`${what}: block_out_channels[0] must be even (sinusoidal timestep embedding)`);
  const factor = 2 ** (levels - 1);
  if (r.sample_size % factor !== 0) throw new NodeBuildError(`${what}: sample_size ${r.sample_size} is not divisible by ${factor} (${levels} levels)`);
  const sample = inputs.sample;
  if (sample && typeof sample[1] === 'number' && sample[1] !== r.in_channels) {
    throw new NodeBuildError(`${what}: input 'sample' has ${sample[1]} channels but in_channels is ${r.in_channels}`);
  }
  return r;
}

/** Sinusoidal embedding of t [B] → [B, dim] (flip_sin_to_cos, freq_shift 0): [cos(t·f_i), sin(t·f_i)], f_i = 10⁴^(−i/half). */
export function timestepEmbedding(b: GraphBuilder, timestep: string, dim: number): string {
  const half = dim / 2;
  const freqs = Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half));
  const args = b.mul(b.unsqueeze(timestep, [1]), b.constant('float32', [1, half], freqs, 'time_freqs'));
  return b.concat([b.op('Cos', [args]), b.op('Sin', [args])], 1);
}

/** GroupNorm over [B, C, H, W] with per-channel affine weights `${name}.weight` / `${name}.bias` of shape [C]. */
export function groupNorm(s: Scope, x: string, name: string, C: number, groups: number, eps: number): string {
  const { b } = s;
  const g = b.reshape(x, [0, groups, -1]);
  const mean = b.reduceMean(g, [2], true, FRAGMENT_OPSET);
  const centred = b.sub(g, mean);
  const variance = b.reduceMean(b.mul(centred, centred), [2], true, FRAGMENT_OPSET);
  const normed = b.div(centred, b.op('Sqrt', [b.add(variance, b.scalar(eps))]));
  const back = b.reshape(normed, b.shape(x));
  const gamma = b.unsqueeze(s.p.weight(`${name}.weight`, [C], init.ones()), [1, 2]);
  const beta = b.unsqueeze(s.p.weight(`${name}.bias`, [C], init.zeros()), [1, 2]);
  return b.add(b.mul(back, gamma), beta);
}

/** nn.Conv2d (square kernel, 'same' padding for odd k) with PyTorch's default U(±1/√fan_in) init. */
function conv2d(s: Scope, x: string, name: string, cin: number, cout: number, k: number, stride = 1): string {
  const fanIn = cin * k * k;
  const weight = s.p.weight(`${name}.weight`, [cout, cin, k, k], init.kaimingUniform(fanIn));
  const bias = s.p.weight(`${name}.bias`, [cout], init.uniform(1 / Math.sqrt(fanIn)));
  const pad = (k - 1) / 2;
  return s.b.op('Conv', [x, weight, bias], { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad] });
}

/** Nearest-neighbour ×2 upsampling of [B, C, H, W]. */
function upsampleNearest2x(b: GraphBuilder, x: string): string {
  const six = b.unsqueeze(x, [3, 5]); // [B,C,H,1,W,1]
  const expanded = b.op('Expand', [six, b.ints([1, 1, 1, 2, 1, 2])]);
  return b.reshape(expanded, b.mul(b.shape(x), b.ints([1, 1, 2, 2])));
}

/**
 * diffusers' TextTimeEmbedding over the conditioning [B, Q, D] → [B, tembDim]: LayerNorm, then AttentionPooling (a
 * query from mean(tokens) + a learned position attends over [that token; tokens], no output projection), Linear,
 * LayerNorm. Weight names `add_embedding.*` as in the diffusers state dict.
 */
export function textTimeEmbedding(s: Scope, context: string, D: number, tembDim: number, heads: number): string {
  const { b } = s;
  const x = layerNorm(s, context, 'add_embedding.norm1', D, 1e-5);
  const position = s.p.weight('add_embedding.pool.positional_embedding', [1, D], init.normal(1 / Math.sqrt(D)));
  const classToken = b.add(b.reduceMean(x, [1], true, FRAGMENT_OPSET), position); // [B, 1, D]
  const tokens = b.concat([classToken, x], 1);
  const q = linear(s, classToken, 'add_embedding.pool.q_proj', D, D);
  const k = linear(s, tokens, 'add_embedding.pool.k_proj', D, D);
  const v = linear(s, tokens, 'add_embedding.pool.v_proj', D, D);
  // diffusers scales q and k by dph^(-1/4) each: the same as 1/√dph on q alone (attentionCore's default).
  const pooled = b.squeeze(attentionCore(b, q, k, v, { heads, headDim: D / heads }), [1]);
  return layerNorm(s, linear(s, pooled, 'add_embedding.proj', D, tembDim), 'add_embedding.norm2', tembDim, 1e-5);
}

/** The UNet's graph, written once and used both to build and to describe (a meta build allocates no weights). */
function writeUnet(s: Scope, r: ResolvedUnet): void {
  const { b } = s;
  const C0 = r.block_out_channels[0];
  const tembDim = 4 * C0;
  const silu = (x: string) => activation(b, x, 'silu');
  const gn = (x: string, name: string, C: number, eps: number) => groupNorm(s, x, name, C, r.norm_num_groups, eps);

  const sample = portInput(s, 'sample', 'float32', ['batch_size', r.in_channels, 'height', 'width']);
  const timestep = portInput(s, 'timestep', 'float32', ['batch_size']);
  const context = portInput(s, 'encoder_hidden_states', 'float32', ['batch_size', 'encoder_sequence_length', r.cross_attention_dim]);

  let temb = linear(s, timestepEmbedding(b, timestep, C0), 'time_embedding.linear_1', C0, tembDim);
  temb = linear(s, silu(temb), 'time_embedding.linear_2', tembDim, tembDim);
  if (r.addition_embed_type === 'text') temb = b.add(temb, textTimeEmbedding(s, context, r.cross_attention_dim, tembDim, r.addition_embed_type_num_heads));
  const tembAct = silu(temb); // every ResNet projects SiLU(temb)

  const resnet = (x: string, name: string, cin: number, cout: number): string => {
    let h = conv2d(s, silu(gn(x, `${name}.norm1`, cin, r.norm_eps)), `${name}.conv1`, cin, cout, 3);
    h = b.add(h, b.unsqueeze(linear(s, tembAct, `${name}.time_emb_proj`, tembDim, cout), [2, 3]));
    h = conv2d(s, silu(gn(h, `${name}.norm2`, cout, r.norm_eps)), `${name}.conv2`, cout, cout, 3);
    const shortcut = cin === cout ? x : conv2d(s, x, `${name}.conv_shortcut`, cin, cout, 1);
    return b.add(shortcut, h);
  };

  const attnNames = (prefix: string) => ({ q: `${prefix}.to_q`, k: `${prefix}.to_k`, v: `${prefix}.to_v`, out: `${prefix}.to_out.0` });
  const noQkvBias = { q: false, k: false, v: false, out: true };

  const transformer2d = (x: string, name: string, C: number): string => {
    let h = conv2d(s, gn(x, `${name}.norm`, C, 1e-6), `${name}.proj_in`, C, C, 1);
    const nhwc = b.transpose(h, [0, 2, 3, 1]);
    let tokens = b.reshape(nhwc, [0, -1, C]);
    const blk = `${name}.transformer_blocks.0`;
    const n1 = layerNorm(s, tokens, `${blk}.norm1`, C, 1e-5);
    tokens = b.add(tokens, attention(s, n1, n1, attnNames(`${blk}.attn1`), { dim: C, heads: r.attention_heads, bias: noQkvBias }));
    const n2 = layerNorm(s, tokens, `${blk}.norm2`, C, 1e-5);
    tokens = b.add(tokens, attention(s, n2, context, attnNames(`${blk}.attn2`), {
      dim: C,
      heads: r.attention_heads,
      kvDim: r.cross_attention_dim,
      bias: noQkvBias,
    }));
    // GEGLU feed-forward: proj → [hidden | gate], hidden · GELU(gate) → Linear back.
    const inner = 4 * C;
    const proj = linear(s, layerNorm(s, tokens, `${blk}.norm3`, C, 1e-5), `${blk}.ff.net.0.proj`, C, 2 * inner);
    const gated = b.mul(sliceAxis(b, proj, 2, 0, inner), activation(b, sliceAxis(b, proj, 2, inner, 2 * inner), 'gelu'));
    tokens = b.add(tokens, linear(s, gated, `${blk}.ff.net.2`, inner, C));
    h = b.transpose(b.reshape(tokens, b.shape(nhwc)), [0, 3, 1, 2]);
    return b.add(conv2d(s, h, `${name}.proj_out`, C, C, 1), x);
  };

  // Down path: every ResNet(+attention) output and every downsampler output is kept for the skip connections.
  let h = conv2d(s, sample, 'conv_in', r.in_channels, C0, 3);
  const skips: Array<{ value: string; channels: number }> = [{ value: h, channels: C0 }];
  const levels = r.block_out_channels.length;
  let channels = C0;
  for (let i = 0; i < levels; i++) {
    const cout = r.block_out_channels[i];
    const attn = r.down_block_types[i] === 'CrossAttnDownBlock2D';
    for (let j = 0; j < r.layers_per_block; j++) {
      h = resnet(h, `down_blocks.${i}.resnets.${j}`, channels, cout);
      channels = cout;
      if (attn) h = transformer2d(h, `down_blocks.${i}.attentions.${j}`, cout);
      skips.push({ value: h, channels });
    }
    if (i < levels - 1) {
      h = conv2d(s, h, `down_blocks.${i}.downsamplers.0.conv`, cout, cout, 3, 2);
      skips.push({ value: h, channels });
    }
  }

  if (r.mid_block) {
    h = resnet(h, 'mid_block.resnets.0', channels, channels);
    h = transformer2d(h, 'mid_block.attentions.0', channels);
    h = resnet(h, 'mid_block.resnets.1', channels, channels);
  }

  // Up path mirrors the down path; each ResNet first concatenates the matching skip on the channel axis.
  for (let i = 0; i < levels; i++) {
    const level = levels - 1 - i;
    const cout = r.block_out_channels[level];
    const attn = r.down_block_types[level] === 'CrossAttnDownBlock2D';
    for (let j = 0; j < r.layers_per_block + 1; j++) {
      const skip = skips.pop();
      if (!skip) throw new NodeBuildError(`${s.what}: internal error: skip connections ran out`);
      h = resnet(b.concat([h, skip.value], 1), `up_blocks.${i}.resnets.${j}`, channels + skip.channels, cout);
      channels = cout;
      if (attn) h = transformer2d(h, `up_blocks.${i}.attentions.${j}`, cout);
    }
    if (i < levels - 1) h = conv2d(s, upsampleNearest2x(b, h), `up_blocks.${i}.upsamplers.0.conv`, cout, cout, 3);
  }

  h = conv2d(s, silu(gn(h, 'conv_norm_out', channels, r.norm_eps)), 'conv_out', channels, r.out_channels, 3);
  portOutput(s, 'out_sample', h, ['batch_size', r.out_channels, 'height', 'width']);
}

/** Builds the fragment; with `meta: true` in the context the weights get no data (describe-only, e.g. 'sd15'). */
export function buildUnet(params: UnetParams, ctx: BuildContext | MetaBuildContext): OnnxFragment {
  const s = openScope('generator.unet', ctx);
  writeUnet(s, resolveUnet(params, ctx.inputShapes, s.what));
  return closeScope(s);
}

export interface ParameterDescription {
  weights: Array<{ name: string; shape: number[] }>;
  parameterCount: number;
}

/** The UNet's weights (names and shapes) and parameter count from a meta build: nothing is allocated. */
export function describeUnet(params: UnetParams, inputShapes: ResolvedShapes = {}): ParameterDescription {
  const meta: MetaBuildContext = { nodeId: 'describe', seed: 0, inputShapes, meta: true };
  const frag = buildUnet(params, meta);
  const weights = frag.weights.map((name) => ({ name, shape: [...(frag.graph.initializers.get(name)?.dims ?? [])] }));
  return { weights, parameterCount: parameterCount(frag) };
}

const unetDef: NodeTypeDef<typeof UnetParams> = {
  info: {
    type: 'generator.unet',
    typeVersion: 1,
    family: 'generator',
    title: 'Conditional UNet (diffusion)',
    aliases: ['unet'],
    inputs: [
      { name: 'sample', kind: 'latent', shape: ['B', 'C', 'H', 'W'], doc: 'Noisy sample x_t (pixels in [-1,1] or latents).' },
      { name: 'timestep', kind: 'any', shape: ['B'], doc: 'Diffusion timestep per batch element (float32).' },
      { name: 'encoder_hidden_states', kind: 'embeds', shape: ['B', 'Q', 'D_cond'], doc: 'Conditioning tokens (e.g. an output projector or a text encoder).' },
    ],
    outputs: [{ name: 'out_sample', kind: 'latent', shape: ['B', 'C', 'H', 'W'], doc: 'Predicted noise ε.' }],
    doc: {
      summary:
        'Predicts the noise in a noisy image given a timestep and conditioning tokens. ResNet blocks carry the timestep; Transformer2D blocks attend to themselves and, by cross-attention, to the conditioning.',
      usedBy: ['Stable Diffusion 1.x/2.x (NExT-GPT, MiniGPT-5 image generation)', 'DDPM/LDM'],
      formula:
        'temb = MLP(sinusoid(t)) (+ TextTimeEmbedding(ctx) with addition_embed_type text); ResNet: h = conv(SiLU(GN(x))) + W·SiLU(temb); out = skip(x) + conv(SiLU(GN(h))); Transformer2D: x += SelfAttn(LN x); x += CrossAttn(LN x, ctx); x += GEGLU(LN x)',
      details:
        'Layout and weight names follow diffusers UNet2DConditionModel. Sampling (DDPM/DDIM with classifier-free guidance) runs on the host around this node.',
    },
  },
  params: UnetParams,
  paramDocs: unetParamDocs,
  inputShapes(params) {
    const r = resolveUnet(params, {});
    return {
      sample: ['B', r.in_channels, 'H', 'W'],
      timestep: ['B'],
      encoder_hidden_states: params.cross_attention_dim === 'auto' ? ['B', 'Q', 'D_cond'] : ['B', 'Q', r.cross_attention_dim],
    };
  },
  outputShapes(params, inputs) {
    const r = resolveUnet(params, inputs);
    const s = inputs.sample ?? ['B', r.in_channels, r.sample_size, r.sample_size];
    return { out_sample: [s[0], r.out_channels, s[2], s[3]] };
  },
  build: buildUnet,
};

export const nodeTypes: NodeTypeDef[] = [unetDef as unknown as NodeTypeDef];

