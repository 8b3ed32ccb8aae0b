// Diffusion sampling loop: seeded noise → N scheduler steps over an ε-predicting UNet → final sample,
// with classifier-free guidance (research/vlm-components.md §4.5–4.6), progress per step and cancellation
// between steps.

import type * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { type Tensor, tensorSize } from '../onnx/ir.js';
import { runSession } from '../onnx/ort.js';
import { type RgbImage, chwToRgb } from './image.js';
import { Rng } from './rng.js';
import { type SchedulerConfigInput, Scheduler } from './schedulers.js';

export class DiffusionError extends Error {
  override name = 'DiffusionError';
}

/** Thrown when the cancel signal fires; the loop stops between two steps. */
export class DiffusionCancelled extends Error {
  override name = 'DiffusionCancelled';
}

/**
 * One denoiser evaluation: `sample` [N,C,H,W], one timestep per batch element, conditioning [N,Q,D] → ε [N,C,H,W].
 * The product uses `unetDenoiser` (an ONNX Runtime session); tests of the scheduler maths may pass other functions.
 */
export type Denoiser = (sample: Tensor, timesteps: readonly number[], conditioning: Tensor) => Promise<Tensor>;

export const UnetPortsSchema = z
  .object({
    sample: z.string().min(1).default('sample'),
    timestep: z.string().min(1).default('timestep'),
    encoderHiddenStates: z.string().min(1).default('encoder_hidden_states'),
    outSample: z.string().min(1).default('out_sample'),
    /** Our generator takes float32 [B]; some Optimum exports take int64 [B] or a scalar. */
    timestepDtype: z.enum(['float32', 'int64']).default('float32'),
    timestepShape: z.enum(['batch', 'scalar']).default('batch'),
  })
  .strict();

/** A Denoiser over a UNet inference session (ports named as in `generator.unet` unless overridden). */
export function unetDenoiser(session: ort.InferenceSession, ports: z.input<typeof UnetPortsSchema> = {}): Denoiser {
  const p = UnetPortsSchema.parse(ports);
  for (const name of [p.sample, p.timestep, p.encoderHiddenStates]) {
    if (!session.inputNames.includes(name)) {
      throw new DiffusionError(`UNet session has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    }
  }
  if (!session.outputNames.includes(p.outSample)) {
    throw new DiffusionError(`UNet session has no output '${p.outSample}' (outputs: ${session.outputNames.join(', ')})`);
  }
  return async (sample, timesteps, conditioning) => {
    if (p.timestepShape === 'scalar' && new Set(timesteps).size !== 1) {
      throw new DiffusionError('UNet takes a scalar timestep but the batch has different timesteps');
    }
    const ts = p.timestepShape === 'scalar' ? [timesteps[0]] : [...timesteps];
    const dims = p.timestepShape === 'scalar' ? [] : [ts.length];
    const timestep: Tensor =
      p.timestepDtype === 'int64'
        ? { dtype: 'int64', dims, data: BigInt64Array.from(ts.map((t) => BigInt(t))) }
        : { dtype: 'float32', dims, data: Float32Array.from(ts) };
    const out = await runSession(
      session,
      { [p.sample]: sample, [p.timestep]: timestep, [p.encoderHiddenStates]: conditioning },
      [p.outSample],
    );
    return out[p.outSample];
  };
}

export const DiffusionSettingsSchema = z
  .object({
    numSteps: z.number().int().min(1).max(1000).default(20),
    seed: z.union([z.number().int(), z.string()]).default(0),
    /** s in ε = ε_u + s(ε_c − ε_u). */
    guidanceScale: z.number().min(0).default(3),
    /** Run the [uncond, cond] batch; default: only when guidanceScale > 1 (as diffusers does). */
    classifierFree: z.boolean().optional(),
    /** [C, H, W] of one sample. */
    sampleShape: z.tuple([z.number().int().min(1), z.number().int().min(1), z.number().int().min(1)]),
  })
  .strict();

export interface DiffusionProgress {
  /** 1-based index of the step just finished. */
  step: number;
  total: number;
  timestep: number;
  /** The current x₀ estimate [B,C,H,W] flattened (for previews). */
  predOriginalSample: Float32Array;
}

export interface DiffusionRequest {
  denoiser: Denoiser;
  scheduler: Scheduler | SchedulerConfigInput;
  settings: z.input<typeof DiffusionSettingsSchema>;
  /** [B, Q, D] conditioning (e.g. the output projector's `conditioning`). */
  conditioning: Tensor;
  /** Unconditional conditioning for CFG, same shape (or batch 1, broadcast); zeros when absent. */
  uncondConditioning?: Tensor;
  /** Start from this x_T [B,C,H,W] instead of seeded noise. */
  initialNoise?: Tensor;
  onProgress?: (p: DiffusionProgress) => void;
  signal?: AbortSignal;
}

function checkFloatTensor(t: Tensor, rank: number, what: string): Float32Array {
  if (t.dtype !== 'float32' || !(t.data instanceof Float32Array)) throw new DiffusionError(`${what} must be float32, got ${t.dtype}`);
  if (t.dims.length !== rank) throw new DiffusionError(`${what} must have rank ${rank}, got shape [${t.dims.join(',')}]`);
  if (tensorSize(t.dims) !== t.data.length) throw new DiffusionError(`${what}: shape [${t.dims.join(',')}] does not match ${t.data.length} values`);
  return t.data;
}

/** Runs the reverse diffusion and returns x₀ [B,C,H,W]. */
export async function sampleDiffusion(req: DiffusionRequest): Promise<Tensor> {
  const parsed = DiffusionSettingsSchema.safeParse(req.settings);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new DiffusionError(`diffusion settings: invalid field '${i?.path.join('.') ?? ''}': ${i?.message ?? ''}`);
  }
  const s = parsed.data;
  const scheduler = req.scheduler instanceof Scheduler ? req.scheduler : new Scheduler(req.scheduler);
  const timesteps = scheduler.setTimesteps(s.numSteps);

  const cond = checkFloatTensor(req.conditioning, 3, 'conditioning');
  const [B, Q, D] = req.conditioning.dims;
  if (B < 1) throw new DiffusionError('conditioning has an empty batch');
  const [C, H, W] = s.sampleShape;
  const per = C * H * W;
  const sampleDims = [B, C, H, W];

  const rng = new Rng(s.seed);
  let x: Float32Array;
  if (req.initialNoise) {
    x = Float32Array.from(checkFloatTensor(req.initialNoise, 4, 'initial noise'));
    if (req.initialNoise.dims.join(',') !== sampleDims.join(',')) {
      throw new DiffusionError(`initial noise has shape [${req.initialNoise.dims.join(',')}], expected [${sampleDims.join(',')}]`);
    }
  } else {
    x = rng.fork('initial-noise').fillNormal(new Float32Array(B * per), scheduler.initNoiseSigma);
  }
  const stepNoise = rng.fork('step-noise');

  const guided = s.classifierFree ?? s.guidanceScale > 1;
  let modelCond = req.conditioning;
  if (guided) {
    const uncond = new Float32Array(B * Q * D);
    if (req.uncondConditioning) {
      const u = checkFloatTensor(req.uncondConditioning, 3, 'unconditional conditioning');
      const [uB, uQ, uD] = req.uncondConditioning.dims;
      if (uQ !== Q || uD !== D || (uB !== B && uB !== 1)) {
        throw new DiffusionError(
          `unconditional conditioning has shape [${uB},${uQ},${uD}], expected [${B},${Q},${D}] or [1,${Q},${D}]`,
        );
      }
      for (let b = 0; b < B; b++) uncond.set(u.subarray((uB === 1 ? 0 : b) * Q * D, ((uB === 1 ? 0 : b) + 1) * Q * D), b * Q * D);
    }
    // Batch layout [uncond; cond], as in diffusers.
    const both = new Float32Array(2 * B * Q * D);
    both.set(uncond, 0);
    both.set(cond, B * Q * D);
    modelCond = { dtype: 'float32', dims: [2 * B, Q, D], data: both };
  }

  for (let i = 0; i < timesteps.length; i++) {
    if (req.signal?.aborted) throw new DiffusionCancelled(`diffusion cancelled before step ${i + 1} of ${timesteps.length}`);
    const t = timesteps[i];
    let eps: Float32Array;
    if (guided) {
      const doubled = new Float32Array(2 * B * per);
      doubled.set(x, 0);
      doubled.set(x, B * per);
      const out = await req.denoiser({ dtype: 'float32', dims: [2 * B, C, H, W], data: doubled }, new Array(2 * B).fill(t), modelCond);
      const e = checkDenoiserOutput(out, [2 * B, C, H, W]);
      eps = guidance(e.subarray(0, B * per), e.subarray(B * per), s.guidanceScale);
    } else {
      const out = await req.denoiser({ dtype: 'float32', dims: sampleDims, data: x }, new Array(B).fill(t), modelCond);
      eps = checkDenoiserOutput(out, sampleDims);
    }
    const needsNoise = scheduler.config.kind === 'ddpm' ? t > 0 : scheduler.config.eta > 0;
    const z = needsNoise ? stepNoise.fillNormal(new Float32Array(B * per), 1) : undefined;
    const r = scheduler.step(eps, t, x, z);
    x = r.prevSample;
    req.onProgress?.({ step: i + 1, total: timesteps.length, timestep: t, predOriginalSample: r.predOriginalSample });
  }
  return { dtype: 'float32', dims: sampleDims, data: x };
}

function checkDenoiserOutput(out: Tensor | undefined, dims: number[]): Float32Array {
  if (!out) throw new DiffusionError('the UNet returned no output');
  const data = checkFloatTensor(out, 4, 'UNet output');
  if (out.dims.join(',') !== dims.join(',')) {
    throw new DiffusionError(`UNet output has shape [${out.dims.join(',')}], expected [${dims.join(',')}]`);
  }
  return data;
}

/** Classifier-free guidance: ε = ε_u + s·(ε_c − ε_u). */
export function guidance(uncond: Float32Array, cond: Float32Array, scale: number): Float32Array {
  if (uncond.length !== cond.length) throw new DiffusionError(`guidance: ${uncond.length} vs ${cond.length} values`);
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = uncond[i] + scale * (cond[i] - uncond[i]);
  return out;
}

/** A sample in [-1, 1], CHW (batch `index` of [B,3,H,W]) → 8-bit RGB HWC. */
export function sampleToRgb(sample: Tensor, index = 0): RgbImage {
  const data = checkFloatTensor(sample, 4, 'sample');
  const [B, C, H, W] = sample.dims;
  if (C !== 3) throw new DiffusionError(`sample has ${C} channels; an RGB image needs 3 (decode latents with a VAE first)`);
  if (!Number.isInteger(index) || index < 0 || index >= B) throw new DiffusionError(`sample index ${index} is outside the batch of ${B}`);
  const unit = new Float32Array(3 * H * W);
  const base = index * 3 * H * W;
  for (let i = 0; i < unit.length; i++) unit[i] = data[base + i] / 2 + 0.5;
  return chwToRgb(unit, W, H, 0);
}
