// Host steps of diffusion.noise and diffusion.sampler: seeded x_T, and the sampling loop over the UNet that feeds
// the sampler's noise_pred input (re-run through the executor at every step).

import type { Tensor } from '../../onnx/ir.js';
import { noiseParams, samplerParams } from '../../nodes/diffusion.js';
import { type Denoiser, DiffusionCancelled, sampleDiffusion } from '../diffusion.js';
import { Rng } from '../rng.js';
import { SCHEDULER_PRESETS } from '../schedulers.js';
import type { GraphHostStep } from './graph.js';
import { type HostValue, HostStepError } from './io.js';

function tensorInput(inputs: Record<string, HostValue>, port: string, node: string, rank: number): Tensor {
  const v = inputs[port];
  if (v === undefined) throw new HostStepError(`node '${node}': input '${port}' is missing`);
  if (typeof v === 'string' || v.dtype !== 'float32' || v.dims.length !== rank) {
    const got = typeof v === 'string' ? 'text' : `${v.dtype}[${v.dims.join(',')}]`;
    throw new HostStepError(`node '${node}': input '${port}' must be a float32 tensor of rank ${rank}, got ${got}`);
  }
  return v;
}

const noiseStep: GraphHostStep = async (raw) => {
  const p = noiseParams.parse(raw);
  const n = p.channels * p.size * p.size;
  const data = new Rng(p.seed).fork('initial-noise').fillNormal(new Float32Array(n), 1);
  return {
    sample: { dtype: 'float32', dims: [1, p.channels, p.size, p.size], data },
    timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(p.timestep) },
  };
};

const samplerStep: GraphHostStep = async (raw, inputs, ctx) => {
  const p = samplerParams.parse(raw);
  const unet = ctx.sourceOf('noise_pred');
  if (!unet) throw new HostStepError(`node '${ctx.nodeId}': connect a UNet's out_sample to input 'noise_pred'`);
  const x = tensorInput(inputs, 'sample', ctx.nodeId, 4);
  const conditioning = tensorInput(inputs, 'conditioning', ctx.nodeId, 3);
  const uncond = inputs.uncond_conditioning === undefined ? undefined : tensorInput(inputs, 'uncond_conditioning', ctx.nodeId, 3);
  const [B, C, H, W] = x.dims;
  if (conditioning.dims[0] !== B) {
    throw new HostStepError(`node '${ctx.nodeId}': 'conditioning' has batch ${conditioning.dims[0]} but 'sample' has ${B}`);
  }
  const schedule = SCHEDULER_PRESETS[p.schedule];
  if (!schedule) throw new HostStepError(`node '${ctx.nodeId}': unknown schedule '${p.schedule}'`);
  const denoiser: Denoiser = async (sample, timesteps, cond) => {
    const out = await ctx.runNode(
      unet.node,
      {
        sample,
        timestep: { dtype: 'float32', dims: [timesteps.length], data: Float32Array.from(timesteps) },
        encoder_hidden_states: cond,
      },
      [unet.port],
    );
    return out[unet.port];
  };
  try {
    const image = await sampleDiffusion({
      denoiser,
      scheduler: { ...schedule, eta: p.eta, predictionType: p.prediction_type },
      settings: { numSteps: p.num_steps, seed: p.seed, guidanceScale: p.guidance_scale, sampleShape: [C, H, W] },
      conditioning,
      uncondConditioning: uncond,
      initialNoise: x,
      signal: ctx.signal,
      onProgress: (e) => ctx.progress(e.step, e.total, 'diffusion step'),
    });
    return { image };
  } catch (e) {
    if (e instanceof DiffusionCancelled) throw e;
    throw new HostStepError(`node '${ctx.nodeId}' (UNet '${unet.node}'): ${(e as Error).message}`);
  }
};

export const diffusionHostSteps: Record<string, GraphHostStep> = {
  'diffusion.noise': noiseStep,
  'diffusion.sampler': samplerStep,
};
