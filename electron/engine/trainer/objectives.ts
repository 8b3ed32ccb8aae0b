// Objectives beyond LM and ITC: the diffusion ε-MSE of an output projector + UNet (NExT-GPT output alignment),
// masked language modelling (BERT) and masked region modelling (ViT). Each has a loss built into the training
// graph and per-batch feeds drawn from the trainer's RNG (noise, timesteps, masks), so a resumed run draws the same.

import type { GraphBuilder } from '../../onnx/builder.js';
import { type Graph, type Tensor, OnnxError } from '../../onnx/ir.js';
import { mseLoss } from '../../autodiff/losses.js';
import { type SamplerParams, samplerParams, noiseParams } from '../../nodes/diffusion.js';
import { type RgbImage, resizeImage } from '../image.js';
import { Rng } from '../rng.js';
import { SCHEDULER_PRESETS, alphasCumprod, addNoise, betaSchedule, parseSchedulerConfig, velocity } from '../schedulers.js';
import type { GraphDocument } from '../document.js';
import type { Executor } from '../executor.js';
import { mapRunInputs } from '../run-io.js';
import { TrainError } from './plan.js';

/** Trainer-fed values of the diffusion objective. */
export const DIFFUSION = {
  /** The clean image x₀ [B, C, S, S] in [-1, 1] (per sample, from the dataset image). */
  x0: 'train.x0',
  /** The regression target: ε, v or x₀, as the sampler's prediction_type says. */
  noise: 'train.noise_target',
  /** 1 keeps a sample's conditioning, 0 replaces it by zeros (classifier-free guidance dropout). */
  keep: 'train.cond_keep',
} as const;

/** NExT-GPT decoding-side alignment: the teacher's conditioning for the sample's request, [B, Q, D]. */
export const ALIGN_TARGET = 'train.align_target';

/**
 * The alignment targets: a text-to-image graph (the teacher) run on each request, its UNet's conditioning read out
 * (text encoder states). One run per request, cached.
 */
export class AlignmentTeacher {
  private readonly cache = new Map<string, Tensor>();
  private readonly source: { node: string; port: string };

  constructor(
    private readonly teacher: { graph: GraphDocument; baseDir: string },
    private readonly executor: Executor,
  ) {
    try {
      this.source = diffusionSetup(teacher.graph).conditioning;
    } catch (e) {
      throw new TrainError(
        `teacher graph '${teacher.graph.name}' must be a text-to-image graph (a text encoder conditioning a generator.unet): ${(e as Error).message}`,
      );
    }
    if (!teacher.graph.nodes.some((n) => n.type === 'io.text')) {
      throw new TrainError(`teacher graph '${teacher.graph.name}': it has no io.text node to put the request in`);
    }
  }

  async target(request: string): Promise<Tensor> {
    const hit = this.cache.get(request);
    if (hit) return hit;
    const { graph, baseDir } = this.teacher;
    const res = await this.executor.run(graph, { baseDir, inputs: mapRunInputs(graph, { prompt: request }), targets: [this.source.node] });
    const t = res.outputs[this.source.node]?.[this.source.port];
    if (!t || typeof t === 'string' || !('dims' in t) || t.dtype !== 'float32' || t.dims.length !== 3) {
      throw new TrainError(`teacher graph '${graph.name}': '${this.source.node}.${this.source.port}' gave no float32 [1, Q, D] conditioning`);
    }
    this.cache.set(request, t as Tensor);
    return t as Tensor;
  }

  /** The teacher's conditioning must have the output projector's [tokens, width]: checked once, naming both. */
  async checkMatches(student: { node: string; dims: readonly (number | string)[] }, request: string): Promise<void> {
    const [, Q, D] = (await this.target(request)).dims;
    const [, q, d] = student.dims;
    if ((typeof q === 'number' && q !== Q) || (typeof d === 'number' && d !== D)) {
      throw new TrainError(
        `output projector '${student.node}' gives ${q} × ${d} conditioning but the teacher '${this.teacher.graph.name}' gives ${Q} × ${D} ` +
          `(${this.source.node}.${this.source.port}); set its num_queries to ${Q} (or pad the teacher's tokenizer to ${q})`,
      );
    }
  }
}

/** Probability of dropping the conditioning of a sample (classifier-free guidance training). */
export const CFG_DROPOUT = 0.1;

export interface DiffusionSetup {
  unet: string;
  /** The output (an output projector's `conditioning`, or a text encoder's states) that feeds the UNet. */
  conditioning: { node: string; port: string };
  /** The diffusion.noise node feeding the UNet's sample and timestep. */
  noiseNode: string;
  channels: number;
  size: number;
  alphasCumprod: Float64Array;
  /** What the UNet learns to predict (the sampler's prediction_type). */
  predictionType: SamplerParams['prediction_type'];
}

/** Finds the UNet, its conditioning source, its noise node and the sampler's training schedule. */
export function diffusionSetup(doc: GraphDocument): DiffusionSetup {
  const unets = doc.nodes.filter((n) => n.type === 'generator.unet');
  if (unets.length !== 1) throw new TrainError(`the diffusion objective needs exactly one generator.unet node; the graph has ${unets.length}`);
  const unet = unets[0].id;
  const into = (port: string) => doc.edges.find((e) => e.to.node === unet && e.to.port === port);
  const cond = into('encoder_hidden_states');
  if (!cond) throw new TrainError(`UNet '${unet}': its encoder_hidden_states is not connected (an output projector or a text encoder gives the conditioning)`);
  const sample = into('sample');
  const timestep = into('timestep');
  const noiseNode = doc.nodes.find((n) => n.id === sample?.from.node);
  if (!sample || !timestep || noiseNode?.type !== 'diffusion.noise' || timestep.from.node !== noiseNode.id) {
    throw new TrainError(`UNet '${unet}': its sample and timestep must come from a diffusion.noise node (the trainer replaces them with x_t and t)`);
  }
  const np = noiseParams.parse(noiseNode.params);
  const sampler = doc.nodes.find((n) => n.type === 'diffusion.sampler' && doc.edges.some((e) => e.to.node === n.id && e.from.node === unet));
  const sp = samplerParams.parse(sampler?.params ?? {});
  const cfg = parseSchedulerConfig(SCHEDULER_PRESETS[sp.schedule], `schedule '${sp.schedule}'`);
  return {
    unet, conditioning: cond.from, noiseNode: noiseNode.id, channels: np.channels, size: np.size,
    alphasCumprod: alphasCumprod(betaSchedule(cfg)), predictionType: sp.prediction_type,
  };
}

/**
 * MSE against ε (or v, or x₀): the UNet reads the conditioning times the keep mask, its prediction is compared with ε.
 * `conditioning` and `prediction` are value names in the fused training graph.
 */
export function addDiffusionLoss(b: GraphBuilder, graph: Graph, conditioning: string, prediction: string): string {
  const keep = b.input(DIFFUSION.keep, 'float32', ['batch', 1, 1]);
  const masked = b.mul(conditioning, keep);
  const producer = graph.nodes.find((n) => n.outputs.includes(masked));
  for (const n of graph.nodes) if (n !== producer) n.inputs = n.inputs.map((i) => (i === conditioning ? masked : i));
  const target = b.input(DIFFUSION.noise, 'float32', ['batch', 'channels', 'height', 'width']);
  return mseLoss(b, prediction, target);
}

/** x₀ of a dataset image: resized (stretch) to size×size, RGB in [-1, 1], [1, 3, S, S]. */
export async function targetImage(img: RgbImage, size: number, channels: number, what: string): Promise<Tensor> {
  if (channels !== 3) throw new TrainError(`${what}: the diffusion objective trains pixel-space UNets (3 channels), this one has ${channels}`);
  const r = await resizeImage(img, { mode: 'stretch', width: size, height: size, kernel: 'linear' }, what);
  const data = new Float32Array(3 * size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) data[c * size * size + y * size + x] = (r.data[(y * size + x) * 3 + c] / 255) * 2 - 1;
    }
  }
  return { dtype: 'float32', dims: [1, 3, size, size], data };
}

/**
 * x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε with t uniform over the training timesteps, ε ~ N(0, I), the CFG keep mask, and the
 * target the sampler's prediction type asks for: ε, v = √ᾱ_t ε − √(1−ᾱ_t) x₀, or x₀.
 */
export function diffusionFeeds(setup: DiffusionSetup, x0: Tensor, rng: Rng): Record<string, Tensor> {
  const B = x0.dims[0];
  const T = setup.alphasCumprod.length;
  const eps = rng.fillNormal(new Float32Array(x0.data.length), 1);
  const t = Array.from({ length: B }, () => rng.int(T));
  const keep = Float32Array.from({ length: B }, () => (rng.uniform() < CFG_DROPOUT ? 0 : 1));
  const clean = x0.data as Float32Array;
  const xt = addNoise(setup.alphasCumprod, clean, eps, t);
  const target = setup.predictionType === 'epsilon' ? eps
    : setup.predictionType === 'sample' ? Float32Array.from(clean)
    : velocity(setup.alphasCumprod, clean, eps, t);
  return {
    [`${setup.noiseNode}.sample`]: { dtype: 'float32', dims: [...x0.dims], data: xt },
    [`${setup.noiseNode}.timestep`]: { dtype: 'float32', dims: [B], data: Float32Array.from(t) },
    [DIFFUSION.noise]: { dtype: 'float32', dims: [...x0.dims], data: target },
    [DIFFUSION.keep]: { dtype: 'float32', dims: [B, 1, 1], data: keep },
  };
}

/** Right-aligns batch-1 [1, T, ...] rows to the longest T by padding on the left (for heads that read the last positions). */
export function leftAlign(rows: Tensor[], pad: number, what: string): Tensor[] {
  if (rows.every((r) => r.dims.length < 2 || r.dims[1] === rows[0].dims[1])) return rows;
  const T = Math.max(...rows.map((r) => r.dims[1]));
  return rows.map((r) => {
    if (r.dims.length < 2 || r.dims[0] !== 1) throw new OnnxError(`${what}: expected [1, T, ...] rows, got [${r.dims}]`);
    if (r.dims[1] === T) return r;
    const inner = r.dims.slice(2).reduce((n, d) => n * d, 1);
    const dims = [1, T, ...r.dims.slice(2)];
    const offset = (T - r.dims[1]) * inner;
    if (r.dtype === 'float32') {
      const data = new Float32Array(T * inner).fill(pad);
      data.set(r.data as Float32Array, offset);
      return { dtype: 'float32', dims, data };
    }
    if (r.dtype === 'int64') {
      const data = new BigInt64Array(T * inner).fill(BigInt(pad));
      data.set(r.data as BigInt64Array, offset);
      return { dtype: 'int64', dims, data };
    }
    throw new OnnxError(`${what}: dtype ${r.dtype} cannot be left-padded`);
  });
}

/** A fixed RNG for evaluation batches (the same noise every evaluation). */
export const evalRng = (seed: number) => new Rng(seed).fork('eval-noise');

// ---------------------------------------------------------------------------------------------------------------
// Masked language modelling (BERT): 15% of the real, non-special tokens are chosen; of those 80% become [MASK],
// 10% a random token, 10% stay; the loss is the cross-entropy at the chosen positions only. The head is BERT's:
// dense → GELU → LayerNorm → the word embedding (tied when the encoder has one) + bias.

export const MLM = { labels: 'mlm.labels', rate: 0.15 } as const;

export interface MaskingTokenizer {
  vocabSize: number;
  specialTokenIds: ReadonlySet<number>;
  tokenToId(token: string): number | undefined;
}

/** Masks a batch of token ids in place of a copy; labels are the original ids at the chosen positions, −100 elsewhere. */
export function maskTokens(
  ids: Tensor,
  mask: Tensor,
  tok: MaskingTokenizer,
  rng: Rng,
  what: string,
): { ids: Tensor; labels: Tensor } {
  const maskId = tok.tokenToId('[MASK]') ?? tok.tokenToId('<mask>');
  if (maskId === undefined) throw new TrainError(`${what}: the tokenizer has no [MASK] (or <mask>) token, which masked language modelling needs`);
  const regular: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) if (!tok.specialTokenIds.has(id)) regular.push(id);
  const src = ids.data as BigInt64Array;
  const m = mask.data as BigInt64Array;
  const out = BigInt64Array.from(src);
  const labels = new BigInt64Array(src.length).fill(-100n);
  const [B, T] = ids.dims;
  for (let b = 0; b < B; b++) {
    const candidates: number[] = [];
    for (let t = 0; t < T; t++) if (m[b * T + t] !== 0n && !tok.specialTokenIds.has(Number(src[b * T + t]))) candidates.push(b * T + t);
    let chosen = candidates.filter(() => rng.uniform() < MLM.rate);
    // Every row predicts at least one token (short captions would often have none).
    if (chosen.length === 0 && candidates.length > 0) chosen = [candidates[rng.int(candidates.length)]];
    for (const i of chosen) {
      labels[i] = src[i];
      const r = rng.uniform();
      if (r < 0.8) out[i] = BigInt(maskId);
      else if (r < 0.9) out[i] = BigInt(regular[rng.int(regular.length)]);
    }
  }
  return { ids: { dtype: 'int64', dims: [...ids.dims], data: out }, labels: { dtype: 'int64', dims: [...ids.dims], data: labels } };
}

export interface HeadWeights {
  /** Trainer-owned weights (name → initial value). */
  init: Map<string, Tensor>;
}

/** BERT's MLM head over `hidden` [B, T, D]; returns logits [B, T, V]. `wordEmbedding` [V, D] is tied when given. */
export function addMlmHead(
  b: GraphBuilder, hidden: string, D: number, V: number, wordEmbedding: string | undefined, rng: Rng, prefix = 'mlm',
): { logits: string; heads: HeadWeights } {
  const init = new Map<string, Tensor>();
  const param = (name: string, dims: number[], fill: (a: Float32Array) => void) => {
    const data = new Float32Array(dims.reduce((n, d) => n * d, 1));
    fill(data);
    const t: Tensor = { dtype: 'float32', dims, data };
    b.initializer(name, t);
    init.set(name, t);
    return name;
  };
  const normal = (a: Float32Array) => rng.fillNormal(a, 0.02);
  const w = param(`${prefix}.transform.dense.weight`, [D, D], normal);
  const bias = param(`${prefix}.transform.dense.bias`, [D], () => undefined);
  let h = b.add(b.matmul(hidden, b.transpose(w, [1, 0])), bias);
  // GELU (erf form) with opset-17 ops.
  h = b.mul(b.mul(h, b.scalar(0.5)), b.add(b.op('Erf', [b.mul(h, b.scalar(Math.SQRT1_2))]), b.scalar(1)));
  const gamma = param(`${prefix}.transform.LayerNorm.weight`, [D], (a) => a.fill(1));
  const beta = param(`${prefix}.transform.LayerNorm.bias`, [D], () => undefined);
  h = b.op('LayerNormalization', [h, gamma, beta], { axis: -1, epsilon: 1e-12 });
  const decoder = wordEmbedding ?? param(`${prefix}.decoder.weight`, [V, D], normal);
  const outBias = param(`${prefix}.bias`, [V], () => undefined);
  const logits = b.add(b.matmul(h, b.transpose(decoder, [1, 0])), outBias);
  return { logits, heads: { init } };
}

// ---------------------------------------------------------------------------------------------------------------
// Masked region modelling (ViT, SimMIM-style): 40% of the patches are blanked in the input (set to 0 in normalised
// pixel space, the dataset mean), and a linear head on the encoder's patch outputs reconstructs each masked patch's
// pixels; the loss is the MSE over masked patches only.

export const MRM = { target: 'mrm.target', mask: 'mrm.mask', ratio: 0.4 } as const;

/** Blanks random patches of pixel_values [B, 3, H, W]; target [B, N, 3p²] (c, y, x order) and mask [B, N, 1]. */
export function maskPatches(pixels: Tensor, patch: number, rng: Rng): { pixels: Tensor; target: Tensor; mask: Tensor } {
  const [B, C, H, W] = pixels.dims;
  if (H % patch !== 0 || W % patch !== 0) throw new TrainError(`masked region modelling: image ${H}×${W} is not a multiple of patch ${patch}`);
  const gh = H / patch;
  const gw = W / patch;
  const N = gh * gw;
  const P = C * patch * patch;
  const src = pixels.data as Float32Array;
  const out = Float32Array.from(src);
  const target = new Float32Array(B * N * P);
  const mask = new Float32Array(B * N);
  for (let b = 0; b < B; b++) {
    const order = rng.permutation(N);
    const count = Math.max(1, Math.round(N * MRM.ratio));
    for (let k = 0; k < count; k++) mask[b * N + order[k]] = 1;
    for (let n = 0; n < N; n++) {
      const py = Math.floor(n / gw) * patch;
      const px = (n % gw) * patch;
      let j = 0;
      for (let c = 0; c < C; c++) {
        for (let y = 0; y < patch; y++) {
          for (let x = 0; x < patch; x++) {
            const i = ((b * C + c) * H + py + y) * W + px + x;
            target[(b * N + n) * P + j++] = src[i];
            if (mask[b * N + n]) out[i] = 0;
          }
        }
      }
    }
  }
  return {
    pixels: { dtype: 'float32', dims: [...pixels.dims], data: out },
    target: { dtype: 'float32', dims: [B, N, P], data: target },
    mask: { dtype: 'float32', dims: [B, N, 1], data: mask },
  };
}

/** Linear head on the patch tokens (CLS dropped) and the masked MSE; returns the loss. */
export function addMrmLoss(b: GraphBuilder, hidden: string, D: number, P: number, rng: Rng): { loss: string; heads: HeadWeights } {
  const init = new Map<string, Tensor>();
  const w: Tensor = { dtype: 'float32', dims: [P, D], data: rng.fillNormal(new Float32Array(P * D), 0.02) };
  const bias: Tensor = { dtype: 'float32', dims: [P], data: new Float32Array(P) };
  b.initializer('mrm.head.weight', w);
  b.initializer('mrm.head.bias', bias);
  init.set('mrm.head.weight', w).set('mrm.head.bias', bias);
  const patches = b.op('Slice', [hidden, b.ints([1]), b.ints([Number.MAX_SAFE_INTEGER]), b.ints([1])]);
  const pred = b.add(b.matmul(patches, b.transpose('mrm.head.weight', [1, 0])), 'mrm.head.bias');
  const target = b.input(MRM.target, 'float32', ['batch', 'patches', P]);
  const mask = b.input(MRM.mask, 'float32', ['batch', 'patches', 1]);
  const diff = b.sub(pred, target);
  const sq = b.op('ReduceSum', [b.mul(b.mul(diff, diff), mask)], { keepdims: 0 });
  const count = b.mul(b.op('ReduceSum', [mask], { keepdims: 0 }), b.scalar(P));
  return { loss: b.div(sq, b.op('Max', [count, b.scalar(1)])), heads: { init } };
}
