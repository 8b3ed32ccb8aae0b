// Noise schedulers for diffusion sampling and training: DDPM and DDIM over flat Float32Arrays.
//
// The maths follows diffusers' DDPMScheduler / DDIMScheduler (research/vlm-components.md §4.5):
//   β schedule (linear | scaled_linear), α_t = 1 − β_t, ᾱ_t = Π α;
//   x̂₀ = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t   (for epsilon prediction; sample and v_prediction also supported);
//   DDPM: x_prev = μ(x̂₀, x_t) + σ z with the "fixed_small" variance;
//   DDIM: x_prev = √ᾱ_prev x̂₀ + √(1 − ᾱ_prev − σ²) ε + σ z, σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev).
// Schedule constants are float64; per-element arithmetic is float64 and results are stored as float32.

import { z } from 'zod';

export class SchedulerError extends Error {
  override name = 'SchedulerError';
}

const int = (min: number) => z.number().int().min(min);

export const SchedulerConfigSchema = z
  .object({
    kind: z.enum(['ddpm', 'ddim']).default('ddim'),
    numTrainTimesteps: int(1).default(1000),
    betaStart: z.number().positive().default(0.0001),
    betaEnd: z.number().positive().default(0.02),
    betaSchedule: z.enum(['linear', 'scaled_linear']).default('linear'),
    timestepSpacing: z.enum(['leading', 'trailing', 'linspace']).default('leading'),
    stepsOffset: int(0).default(0),
    /** DDIM: the ᾱ used after the last step is 1 (true) or ᾱ₀ (false). */
    setAlphaToOne: z.boolean().default(true),
    clipSample: z.boolean().default(true),
    clipSampleRange: z.number().positive().default(1),
    predictionType: z.enum(['epsilon', 'sample', 'v_prediction']).default('epsilon'),
    /** DDIM stochasticity: 0 = deterministic DDIM, 1 = DDPM-like variance. */
    eta: z.number().min(0).default(0),
  })
  .strict()
  .refine((c) => c.betaEnd > c.betaStart, { message: 'betaEnd must be larger than betaStart', path: ['betaEnd'] })
  .refine((c) => c.betaEnd < 1, { message: 'betaEnd must be below 1', path: ['betaEnd'] });

export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;
export type SchedulerConfigInput = z.input<typeof SchedulerConfigSchema>;

/** Named configurations: diffusers' defaults and Stable Diffusion 1.5's scheduler_config.json. */
export const SCHEDULER_PRESETS: Record<string, SchedulerConfigInput> = {
  /** DDPMScheduler defaults (Ho et al. 2020). */
  'ddpm-default': { kind: 'ddpm', betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', clipSample: true },
  /** DDIMScheduler defaults. */
  'ddim-default': { kind: 'ddim', betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear', clipSample: true, setAlphaToOne: true },
  /** Stable Diffusion 1.5 (latent space). */
  sd15: {
    kind: 'ddim',
    betaStart: 0.00085,
    betaEnd: 0.012,
    betaSchedule: 'scaled_linear',
    stepsOffset: 1,
    setAlphaToOne: false,
    clipSample: false,
  },
};

export function parseSchedulerConfig(input: unknown, what = 'scheduler'): SchedulerConfig {
  const r = SchedulerConfigSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new SchedulerError(`${what}: invalid field '${i?.path.join('.') ?? ''}': ${i?.message ?? 'unknown error'}`);
  }
  return r.data;
}

/** β_t for t = 0..T−1. */
export function betaSchedule(cfg: Pick<SchedulerConfig, 'betaStart' | 'betaEnd' | 'betaSchedule' | 'numTrainTimesteps'>): Float64Array {
  const T = cfg.numTrainTimesteps;
  const betas = new Float64Array(T);
  const lerp = (a: number, b: number, i: number) => (T === 1 ? a : a + ((b - a) * i) / (T - 1));
  for (let i = 0; i < T; i++) {
    if (cfg.betaSchedule === 'linear') betas[i] = lerp(cfg.betaStart, cfg.betaEnd, i);
    else betas[i] = lerp(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), i) ** 2;
  }
  return betas;
}

/** ᾱ_t = Π_{s ≤ t} (1 − β_s). */
export function alphasCumprod(betas: Float64Array): Float64Array {
  const out = new Float64Array(betas.length);
  let p = 1;
  for (let i = 0; i < betas.length; i++) {
    p *= 1 - betas[i];
    out[i] = p;
  }
  return out;
}

/** The inference timesteps, highest first, for N steps with the configured spacing. */
export function inferenceTimesteps(cfg: SchedulerConfig, numSteps: number): number[] {
  const T = cfg.numTrainTimesteps;
  if (!Number.isInteger(numSteps) || numSteps < 1 || numSteps > T) {
    throw new SchedulerError(`number of inference steps must be an integer in 1..${T} (numTrainTimesteps), got ${numSteps}`);
  }
  const ts: number[] = [];
  switch (cfg.timestepSpacing) {
    case 'linspace':
      // linspace(0, T−1, N), rounded (half to even as numpy does), reversed.
      for (let i = numSteps - 1; i >= 0; i--) ts.push(roundHalfEven(numSteps === 1 ? 0 : ((T - 1) * i) / (numSteps - 1)));
      break;
    case 'leading': {
      const ratio = Math.floor(T / numSteps);
      for (let i = numSteps - 1; i >= 0; i--) ts.push(i * ratio + cfg.stepsOffset);
      break;
    }
    case 'trailing': {
      // round(arange(T, 0, −T/N)) − 1
      const ratio = T / numSteps;
      for (let i = 0; i < numSteps; i++) ts.push(roundHalfEven(T - i * ratio) - 1);
      break;
    }
  }
  for (const t of ts) {
    if (t < 0 || t >= T) {
      throw new SchedulerError(
        `timestep ${t} is outside 0..${T - 1}: stepsOffset ${cfg.stepsOffset} is too large for ${numSteps} '${cfg.timestepSpacing}' steps`,
      );
    }
  }
  return ts;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface StepResult {
  prevSample: Float32Array;
  /** The model's estimate of x₀ at this step (after clipping). */
  predOriginalSample: Float32Array;
}

/** A DDPM or DDIM scheduler with its inference timesteps set. */
export class Scheduler {
  readonly config: SchedulerConfig;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** ᾱ after the final DDIM step. */
  readonly finalAlphaCumprod: number;
  private steps: number[] = [];

  constructor(config: SchedulerConfigInput | SchedulerConfig) {
    this.config = parseSchedulerConfig(config);
    this.betas = betaSchedule(this.config);
    this.alphasCumprod = alphasCumprod(this.betas);
    this.finalAlphaCumprod = this.config.setAlphaToOne ? 1 : this.alphasCumprod[0];
  }

  /** Chooses N inference timesteps (highest first); must be called before `step`. */
  setTimesteps(numSteps: number): number[] {
    this.steps = inferenceTimesteps(this.config, numSteps);
    return [...this.steps];
  }

  get timesteps(): readonly number[] {
    return this.steps;
  }

  /** Standard deviation of the initial noise (1 for DDPM and DDIM). */
  get initNoiseSigma(): number {
    return 1;
  }

  /**
   * The timestep whose ᾱ the step from t lands on (−1 means "past the end").
   * DDPM: the next timestep of the schedule. DDIM: t − T // N, as diffusers does for every spacing.
   */
  previousTimestep(t: number): number {
    const idx = this.steps.indexOf(t);
    if (idx < 0) throw new SchedulerError(`timestep ${t} is not one of the ${this.steps.length} inference timesteps (call setTimesteps first)`);
    if (this.config.kind === 'ddim') return t - Math.floor(this.config.numTrainTimesteps / this.steps.length);
    return idx === this.steps.length - 1 ? -1 : this.steps[idx + 1];
  }

  /**
   * One reverse step x_t → x_prev. `noise` (standard normal, same length as the sample) is required when the step
   * is stochastic: DDPM at t > 0, or DDIM with η > 0.
   */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, noise?: Float32Array): StepResult {
    if (modelOutput.length !== sample.length) {
      throw new SchedulerError(`model output has ${modelOutput.length} values but the sample has ${sample.length}`);
    }
    const cfg = this.config;
    const prevT = this.previousTimestep(t);
    const aT = this.alphasCumprod[t];
    const ddim = cfg.kind === 'ddim';
    const aPrev = prevT >= 0 ? this.alphasCumprod[prevT] : ddim ? this.finalAlphaCumprod : 1;
    const bT = 1 - aT;
    const bPrev = 1 - aPrev;

    let sigma = 0;
    let muX0 = 0; // DDPM posterior-mean coefficients
    let muXt = 0;
    if (ddim) {
      sigma = cfg.eta * Math.sqrt((bPrev / bT) * (1 - aT / aPrev));
    } else {
      const alphaT = aT / aPrev;
      const betaT = 1 - alphaT;
      muX0 = (Math.sqrt(aPrev) * betaT) / bT;
      muXt = (Math.sqrt(alphaT) * bPrev) / bT;
      sigma = t > 0 ? Math.sqrt(Math.max((bPrev / bT) * betaT, 1e-20)) : 0;
    }
    if (sigma > 0) {
      if (!noise) throw new SchedulerError(`${cfg.kind} step at t=${t} is stochastic and needs a noise array`);
      if (noise.length !== sample.length) throw new SchedulerError(`noise has ${noise.length} values but the sample has ${sample.length}`);
    }

    const n = sample.length;
    const prev = new Float32Array(n);
    const x0Out = new Float32Array(n);
    const sqA = Math.sqrt(aT);
    const sqB = Math.sqrt(bT);
    const range = cfg.clipSampleRange;
    const dirCoef = ddim ? Math.sqrt(Math.max(1 - aPrev - sigma * sigma, 0)) : 0;
    const sqAPrev = Math.sqrt(aPrev);
    for (let i = 0; i < n; i++) {
      const x = sample[i];
      const m = modelOutput[i];
      let x0: number;
      let eps: number;
      if (cfg.predictionType === 'epsilon') {
        eps = m;
        x0 = (x - sqB * m) / sqA;
      } else if (cfg.predictionType === 'sample') {
        x0 = m;
        eps = (x - sqA * m) / sqB;
      } else {
        x0 = sqA * x - sqB * m;
        eps = sqA * m + sqB * x;
      }
      if (cfg.clipSample) x0 = Math.min(range, Math.max(-range, x0));
      let v = ddim ? sqAPrev * x0 + dirCoef * eps : muX0 * x0 + muXt * x;
      if (sigma > 0) v += sigma * (noise as Float32Array)[i];
      prev[i] = v;
      x0Out[i] = x0;
    }
    return { prevSample: prev, predOriginalSample: x0Out };
  }

  /**
   * Forward diffusion for training: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, with one timestep per batch element
   * (`x0` and `noise` are [B, ...] flattened; `timesteps` has B entries).
   */
  addNoise(x0: Float32Array, noise: Float32Array, timesteps: readonly number[]): Float32Array {
    return addNoise(this.alphasCumprod, x0, noise, timesteps);
  }

  /** The v-prediction target v = √ᾱ_t ε − √(1−ᾱ_t) x₀ (same layout as `addNoise`). */
  velocity(x0: Float32Array, noise: Float32Array, timesteps: readonly number[]): Float32Array {
    return velocity(this.alphasCumprod, x0, noise, timesteps);
  }
}

export function addNoise(alphasCumprod: Float64Array, x0: Float32Array, noise: Float32Array, timesteps: readonly number[]): Float32Array {
  return combinePerBatch(alphasCumprod, x0, noise, timesteps, (a) => [Math.sqrt(a), Math.sqrt(1 - a)]);
}

/** v = √ᾱ_t ε − √(1−ᾱ_t) x₀, per batch element (the v-prediction target). */
export function velocity(alphasCumprod: Float64Array, x0: Float32Array, noise: Float32Array, timesteps: readonly number[]): Float32Array {
  return combinePerBatch(alphasCumprod, x0, noise, timesteps, (a) => [-Math.sqrt(1 - a), Math.sqrt(a)]);
}

/** out = c0(ᾱ_t)·x0 + c1(ᾱ_t)·noise, with t chosen per batch element. */
function combinePerBatch(
  alphasCumprod: Float64Array,
  x0: Float32Array,
  noise: Float32Array,
  timesteps: readonly number[],
  coefs: (alphaBar: number) => [number, number],
): Float32Array {
  if (x0.length !== noise.length) throw new SchedulerError(`x0 has ${x0.length} values but the noise has ${noise.length}`);
  const B = timesteps.length;
  if (B === 0 || x0.length % B !== 0) {
    throw new SchedulerError(`${x0.length} values cannot be split into ${B} batch elements (one timestep per element)`);
  }
  const per = x0.length / B;
  const out = new Float32Array(x0.length);
  for (let b = 0; b < B; b++) {
    const t = timesteps[b];
    if (!Number.isInteger(t) || t < 0 || t >= alphasCumprod.length) {
      throw new SchedulerError(`timestep ${t} of batch element ${b} is outside 0..${alphasCumprod.length - 1}`);
    }
    const [c0, c1] = coefs(alphasCumprod[t]);
    for (let i = b * per; i < (b + 1) * per; i++) out[i] = c0 * x0[i] + c1 * noise[i];
  }
  return out;
}
