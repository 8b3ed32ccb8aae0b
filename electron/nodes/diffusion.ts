// Diffusion sampling as graph nodes (host side). A conditional UNet (`generator.unet`) predicts noise for one step;
// these nodes turn it into an image generator:
//
//   diffusion.noise ──sample, timestep──▶ generator.unet ──out_sample──▶ diffusion.sampler ──image──▶ io.image_output
//   conditioning ─────────────────────▶ (encoder_hidden_states)        ▲ conditioning, sample (x_T)
//
// The edge UNet.out_sample → sampler.noise_pred binds the denoiser: the sampler re-runs that UNet's built session
// at every scheduler step (DDPM/DDIM, classifier-free guidance). The noise node gives the UNet concrete inputs, so
// the graph validates and widths resolve as for any other node; its single evaluation costs one UNet call.

import { z } from 'zod';
import type { NodeTypeDef } from './types.js';

// ---------------------------------------------------------------------------------------------------------------
// diffusion.noise

export const noiseParams = z.strictObject({
  seed: z.number().int().nonnegative().default(0),
  channels: z.number().int().min(1).max(16).default(3),
  size: z.number().int().min(4).max(1024).default(32),
  timestep: z.number().int().min(0).max(9999).default(999),
});

const noiseNode: NodeTypeDef<typeof noiseParams> = {
  info: {
    type: 'diffusion.noise',
    typeVersion: 1,
    family: 'generator',
    title: 'Initial noise',
    aliases: ['noise'],
    inputs: [],
    outputs: [
      { name: 'sample', kind: 'latent', shape: [1, 'C', 'H', 'W'], doc: 'Seeded standard-normal x_T.' },
      { name: 'timestep', kind: 'any', shape: [1], doc: 'float32 [1]: the timestep paired with x_T.' },
    ],
    doc: {
      summary: 'Seeded Gaussian noise x_T of the generator’s sample shape, the starting point of reverse diffusion.',
      usedBy: ['every diffusion generator (Stable Diffusion in NExT-GPT, MiniGPT-5)'],
      formula: 'x_T ~ N(0, I)',
    },
  },
  params: noiseParams,
  paramDocs: {
    seed: 'Seed of the noise (same seed → same image).',
    channels: 'Channels of the sample (3 for the tiny pixel-space UNet, 4 for SD latents).',
    size: 'Height = width of the sample (32 for the tiny UNet, 64 for SD-1.5 latents).',
    timestep: 'Timestep paired with x_T for the UNet’s first evaluation (the sampler uses its own schedule).',
  },
  outputShapes: (p) => ({ sample: [1, p.channels, p.size, p.size], timestep: [1] }),
  host: 'diffusion.noise',
};

// ---------------------------------------------------------------------------------------------------------------
// diffusion.sampler

export const SAMPLER_SCHEDULES = ['ddim-default', 'ddpm-default', 'sd15'] as const;

export const samplerParams = z.strictObject({
  schedule: z.enum(SAMPLER_SCHEDULES).default('ddim-default'),
  num_steps: z.number().int().min(1).max(1000).default(10),
  guidance_scale: z.number().min(0).max(50).default(7.5),
  eta: z.number().min(0).max(1).default(0),
  seed: z.number().int().nonnegative().default(0),
  prediction_type: z.enum(['epsilon', 'v_prediction', 'sample']).default('epsilon'),
});
export type SamplerParams = z.infer<typeof samplerParams>;

const samplerNode: NodeTypeDef<typeof samplerParams> = {
  info: {
    type: 'diffusion.sampler',
    typeVersion: 1,
    family: 'generator',
    title: 'Diffusion sampler',
    aliases: ['sampler'],
    inputs: [
      {
        name: 'noise_pred',
        kind: 'latent',
        shape: ['B', 'C', 'H', 'W'],
        doc: "Connect the UNet's out_sample here: the sampler runs that UNet at every step.",
      },
      { name: 'sample', kind: 'latent', shape: ['B', 'C', 'H', 'W'], doc: 'x_T, the starting noise.' },
      { name: 'conditioning', kind: 'embeds', shape: ['B', 'Q', 'D'], doc: 'Conditioning tokens (the UNet’s encoder_hidden_states).' },
      {
        name: 'uncond_conditioning',
        kind: 'embeds',
        shape: ['B', 'Q', 'D'],
        optional: true,
        doc: 'Unconditional conditioning for guidance; zeros when not connected (NExT-GPT uses zero features).',
      },
    ],
    outputs: [{ name: 'image', kind: 'image', shape: ['B', 'C', 'H', 'W'], doc: 'x₀ in the generator range (pixels in [-1, 1]).' }],
    doc: {
      summary:
        'Reverse diffusion: starting from x_T, asks the connected UNet for the noise at each scheduler step (DDIM or ' +
        'DDPM) and removes it, with classifier-free guidance between the conditioned and unconditioned predictions.',
      usedBy: ['Stable Diffusion pipelines', 'NExT-GPT and MiniGPT-5 image generation'],
      formula: 'ε = ε(x_t, ∅) + s·(ε(x_t, c) − ε(x_t, ∅));  x_{t−1} = step(x_t, ε, t)',
      details:
        "schedule: ddim-default / ddpm-default (linear β 1e-4…0.02, clipped x̂₀; pixel space) or sd15 (scaled-linear " +
        'β 0.00085…0.012, latent space). Guidance runs the [uncond; cond] batch when guidance_scale > 1.',
    },
  },
  params: samplerParams,
  paramDocs: {
    schedule: 'Scheduler and β schedule: ddim-default, ddpm-default (pixel-space UNets) or sd15 (Stable Diffusion 1.5 latents).',
    num_steps: 'Number of denoising steps.',
    guidance_scale: 'Classifier-free guidance scale s (7.5 in Stable Diffusion and NExT-GPT; ≤ 1 turns guidance off).',
    eta: 'DDIM stochasticity (0 = deterministic).',
    seed: 'Seed of the per-step noise (DDPM, or DDIM with eta > 0).',
    prediction_type:
      "What the UNet predicts: 'epsilon' (the noise ε; Stable Diffusion 1.5), 'v_prediction' (v = √ᾱ·ε − √(1−ᾱ)·x₀; " +
      "SD 2.x; well conditioned at every noise level, so few-step sampling of a briefly trained UNet stays stable) or 'sample' (x₀). " +
      'Training (nextgpt-output) regresses the same target.',
  },
  outputShapes: (_p, inputs) => ({ image: inputs.sample ?? ['B', 'C', 'H', 'W'] }),
  host: 'diffusion.sampler',
};

export const nodeTypes: NodeTypeDef[] = [noiseNode as unknown as NodeTypeDef, samplerNode as unknown as NodeTypeDef];
