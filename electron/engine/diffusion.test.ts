import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import { type Tensor, newModel } from '../onnx/ir.js';
import { createSession } from '../onnx/ort.js';
import { UnetParams, buildUnet } from '../nodes/generators.js';
import { Rng } from './rng.js';
import { SCHEDULER_PRESETS, Scheduler } from './schedulers.js';
import { type Denoiser, DiffusionCancelled, DiffusionError, type DiffusionProgress, guidance, sampleDiffusion, sampleToRgb, unetDenoiser } from './diffusion.js';

const cond = (B: number, seed: number): Tensor => ({ dtype: 'float32', dims: [B, 8, 64], data: new Rng(seed).fillNormal(new Float32Array(B * 8 * 64), 1) });
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const ddim = { ...SCHEDULER_PRESETS['ddim-default'], eta: 0 };
const ddpm = SCHEDULER_PRESETS['ddpm-default'];
const shape: [number, number, number] = [3, 32, 32];

describe('diffusion sampling over the tiny UNet in onnxruntime', () => {
  let session: ort.InferenceSession;
  beforeAll(async () => {
    const frag = buildUnet(UnetParams.parse({}), { nodeId: 'unet', seed: 5, inputShapes: {} });
    session = await createSession(newModel(frag.graph, frag.opset));
  });
  afterAll(async () => {
    await session?.release();
  });

  it('DDIM (η = 0) is deterministic for a seed; another seed gives another sample', async () => {
    const denoiser = unetDenoiser(session);
    const run = (seed: number) =>
      sampleDiffusion({ denoiser, scheduler: ddim, settings: { numSteps: 2, seed, guidanceScale: 1, sampleShape: shape }, conditioning: cond(1, 1) });
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(a.dims).toEqual([1, 3, 32, 32]);
    expect(Array.from(a.data as Float32Array)).toEqual(Array.from(b.data as Float32Array));
    expect(maxAbsDiff(a.data as Float32Array, c.data as Float32Array)).toBeGreaterThan(1e-2);
    expect((a.data as Float32Array).every(Number.isFinite)).toBe(true);
  });

  it('DDPM with the same seed is reproducible (including the per-step noise) and differs for another seed', async () => {
    const denoiser = unetDenoiser(session);
    const run = (seed: number) =>
      sampleDiffusion({ denoiser, scheduler: ddpm, settings: { numSteps: 2, seed, guidanceScale: 1, sampleShape: shape }, conditioning: cond(2, 2) });
    const a = await run(3);
    const b = await run(3);
    expect(a.dims).toEqual([2, 3, 32, 32]);
    expect(Array.from(a.data as Float32Array)).toEqual(Array.from(b.data as Float32Array));
    // Same initial noise but different step noise: only the stochastic steps differ.
    const init: Tensor = { dtype: 'float32', dims: [1, 3, 32, 32], data: new Rng(1).fillNormal(new Float32Array(3072), 1) };
    const s1 = await sampleDiffusion({ denoiser, scheduler: ddpm, settings: { numSteps: 2, seed: 1, guidanceScale: 1, sampleShape: shape }, conditioning: cond(1, 2), initialNoise: init });
    const s2 = await sampleDiffusion({ denoiser, scheduler: ddpm, settings: { numSteps: 2, seed: 2, guidanceScale: 1, sampleShape: shape }, conditioning: cond(1, 2), initialNoise: init });
    expect(maxAbsDiff(s1.data as Float32Array, s2.data as Float32Array)).toBeGreaterThan(1e-3);
  });

  it('classifier-free guidance with s = 1 equals the conditional prediction; s > 1 moves away from it', async () => {
    const denoiser = unetDenoiser(session);
    const base = { denoiser, scheduler: ddim, conditioning: cond(1, 4) };
    const plain = await sampleDiffusion({ ...base, settings: { numSteps: 2, seed: 1, guidanceScale: 1, classifierFree: false, sampleShape: shape } });
    const cfg1 = await sampleDiffusion({ ...base, settings: { numSteps: 2, seed: 1, guidanceScale: 1, classifierFree: true, sampleShape: shape } });
    const cfg3 = await sampleDiffusion({ ...base, settings: { numSteps: 2, seed: 1, guidanceScale: 3, sampleShape: shape } });
    expect(maxAbsDiff(plain.data as Float32Array, cfg1.data as Float32Array)).toBeLessThan(1e-4);
    expect(maxAbsDiff(plain.data as Float32Array, cfg3.data as Float32Array)).toBeGreaterThan(1e-3);
    // An explicit unconditional tensor equal to the condition makes guidance a no-op at any scale.
    const same = await sampleDiffusion({ ...base, uncondConditioning: cond(1, 4), settings: { numSteps: 2, seed: 1, guidanceScale: 5, sampleShape: shape } });
    expect(maxAbsDiff(plain.data as Float32Array, same.data as Float32Array)).toBeLessThan(1e-4);
  });

  it('reports progress once per step and stops between steps when cancelled', async () => {
    const denoiser = unetDenoiser(session);
    const seen: DiffusionProgress[] = [];
    await sampleDiffusion({ denoiser, scheduler: ddim, settings: { numSteps: 4, guidanceScale: 1, sampleShape: shape }, conditioning: cond(1, 1), onProgress: (p) => seen.push(p) });
    expect(seen.map((p) => [p.step, p.total, p.timestep])).toEqual([[1, 4, 750], [2, 4, 500], [3, 4, 250], [4, 4, 0]]);
    expect(seen[0].predOriginalSample.length).toBe(3 * 32 * 32);

    const controller = new AbortController();
    let steps = 0;
    const run = sampleDiffusion({
      denoiser, scheduler: ddim, settings: { numSteps: 4, guidanceScale: 1, sampleShape: shape }, conditioning: cond(1, 1), signal: controller.signal,
      onProgress: () => { steps++; if (steps === 2) controller.abort(); },
    });
    await expect(run).rejects.toThrow(DiffusionCancelled);
    expect(steps).toBe(2);
  });

  it('rejects mismatched inputs with clear errors', async () => {
    const denoiser = unetDenoiser(session);
    await expect(sampleDiffusion({ denoiser, scheduler: ddim, settings: { numSteps: 2, sampleShape: shape, guidanceScale: 3 }, conditioning: cond(1, 1), uncondConditioning: cond(3, 1) }))
      .rejects.toThrow(/unconditional conditioning has shape \[3,8,64\]/);
    await expect(sampleDiffusion({ denoiser, scheduler: ddim, settings: { numSteps: 0, sampleShape: shape }, conditioning: cond(1, 1) })).rejects.toThrow(/numSteps/);
    expect(() => unetDenoiser(session, { sample: 'latent' })).toThrow(/no input 'latent'/);
  });
});

describe('guidance and image conversion', () => {
  it('recovers x₀ from an exact noise predictor (DDIM and DDPM, few and many steps)', async () => {
    // The ideal ε̂(x_t, t) = (x_t − √ᾱ_t x₀) / √(1 − ᾱ_t) for a known x₀: any sampler must land on x₀.
    const x0 = new Float32Array(3 * 32 * 32).map((_, i) => (i % 32 < 16 ? 0.8 : -0.6));
    const vddim = { ...ddim, predictionType: 'v_prediction' as const };
    for (const [scheduler, numSteps] of [[ddim, 5], [ddim, 50], [ddpm, 50], [vddim, 5]] as const) {
      const alphas = new Scheduler(scheduler).alphasCumprod;
      const denoiser: Denoiser = async (sample, timesteps) => {
        const a = alphas[timesteps[0]];
        const x = sample.data as Float32Array;
        const eps = (v: number, i: number) => (v - Math.sqrt(a) * x0[i % x0.length]) / Math.sqrt(1 - a);
        // v = √ᾱ ε − √(1−ᾱ) x₀ for the v-predicting scheduler.
        const out = scheduler === vddim
          ? x.map((v, i) => Math.sqrt(a) * eps(v, i) - Math.sqrt(1 - a) * x0[i % x0.length])
          : x.map(eps);
        return { dtype: 'float32', dims: sample.dims, data: out };
      };
      const out = await sampleDiffusion({ denoiser, scheduler, settings: { numSteps, seed: 3, guidanceScale: 1, sampleShape: shape }, conditioning: cond(1, 1) });
      expect(maxAbsDiff(out.data as Float32Array, x0), `${scheduler.kind} ${scheduler.predictionType ?? 'epsilon'} ${numSteps} steps`).toBeLessThan(1e-3);
    }
  });

  it('ε = ε_u + s(ε_c − ε_u)', () => {
    const u = Float32Array.from([1, 2, -1]);
    const c = Float32Array.from([3, 2, 1]);
    expect(Array.from(guidance(u, c, 7.5))).toEqual([16, 2, 14]);
    expect(Array.from(guidance(u, c, 1))).toEqual([3, 2, 1]);
  });

  it('maps [-1, 1] CHW to RGB u8 HWC, clamping, for any batch index', () => {
    const data = new Float32Array(2 * 3 * 1 * 2);
    // image 1: pixel 0 = (−1, 0, 1), pixel 1 = (2, −3, 0.5)
    data.set([-1, 2, 0, -3, 1, 0.5], 6);
    const img = sampleToRgb({ dtype: 'float32', dims: [2, 3, 1, 2], data }, 1);
    expect(img.width).toBe(2);
    expect(img.height).toBe(1);
    expect(Array.from(img.data)).toEqual([0, 128, 255, 255, 0, 191]);
    expect(() => sampleToRgb({ dtype: 'float32', dims: [1, 4, 1, 1], data: new Float32Array(4) })).toThrow(DiffusionError);
    expect(() => sampleToRgb({ dtype: 'float32', dims: [2, 3, 1, 2], data }, 2)).toThrow(/index 2/);
  });
});
