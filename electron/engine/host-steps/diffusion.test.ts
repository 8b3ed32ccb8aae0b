// The sampler node runs the UNet that feeds its noise_pred input through the executor, once per step: the image
// equals a direct sampleDiffusion over a session of the same built UNet fragment.

import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../onnx/ir.js';
import { createSession } from '../../onnx/ort.js';
import { graphDocumentFromJson } from '../document.js';
import { sampleDiffusion, unetDenoiser } from '../diffusion.js';
import { Executor, RunCancelled, type RunEvent } from '../executor.js';
import { SCHEDULER_PRESETS } from '../schedulers.js';

const edge = (a: string, b: string) => {
  const [fn, fp] = a.split(':');
  const [tn, tp] = b.split(':');
  return { from: { node: fn, port: fp }, to: { node: tn, port: tp } };
};

const doc = graphDocumentFromJson(
  {
    format: 'composer.graph',
    version: 1,
    nodes: [
      { id: 'prompt', type: 'io.text', params: { text: 'a red circle' } },
      { id: 'tokenize', type: 'text.tokenize' },
      { id: 'text_encoder', type: 'encoder.clip_text', frozen: true },
      { id: 'noise', type: 'diffusion.noise', params: { seed: 7 } },
      { id: 'unet', type: 'generator.unet', frozen: true },
      { id: 'sampler', type: 'diffusion.sampler', params: { num_steps: 3, guidance_scale: 2 } },
      { id: 'out', type: 'io.image_output' },
    ],
    edges: [
      edge('prompt:text', 'tokenize:text'),
      edge('tokenize:input_ids', 'text_encoder:input_ids'),
      edge('text_encoder:last_hidden_state', 'unet:encoder_hidden_states'),
      edge('text_encoder:last_hidden_state', 'sampler:conditioning'),
      edge('noise:sample', 'unet:sample'),
      edge('noise:timestep', 'unet:timestep'),
      edge('noise:sample', 'sampler:sample'),
      edge('unet:out_sample', 'sampler:noise_pred'),
      edge('sampler:image', 'out:image'),
    ],
  },
  'sampler-test',
);

describe('diffusion.sampler', () => {
  it('samples with the connected UNet, reports each step, and matches a direct sampling loop', async () => {
    const ex = new Executor();
    const events: RunEvent[] = [];
    const res = await ex.run(doc, { baseDir: '.', onEvent: (e) => events.push(e) });
    const image = res.outputs.sampler.image as Tensor;
    expect(image.dims).toEqual([1, 3, 32, 32]);
    expect(events.filter((e) => e.type === 'progress' && e.node === 'sampler').map((e) => (e.type === 'progress' ? e.step : 0))).toEqual([1, 2, 3]);

    const unet = await ex.fragmentOf(doc, '.', 'unet');
    const session = await createSession({ irVersion: 8, producerName: 't', producerVersion: '0', opsets: { '': unet.opset }, graph: unet.graph, metadata: {} });
    const direct = await sampleDiffusion({
      denoiser: unetDenoiser(session),
      scheduler: { ...SCHEDULER_PRESETS['ddim-default'], eta: 0 },
      settings: { numSteps: 3, seed: 0, guidanceScale: 2, sampleShape: [3, 32, 32] },
      conditioning: res.outputs.text_encoder.last_hidden_state as Tensor,
      initialNoise: res.outputs.noise.sample as Tensor,
    });
    expect(Array.from(image.data as Float32Array)).toEqual(Array.from(direct.data as Float32Array));
    await session.release();

    const reseeded = await ex.run({ ...doc, nodes: doc.nodes.map((n) => (n.id === 'noise' ? { ...n, params: { seed: 8 } } : n)) }, { baseDir: '.' });
    expect(Array.from((reseeded.outputs.sampler.image as Tensor).data as Float32Array)).not.toEqual(Array.from(image.data as Float32Array));
    await ex.dispose();
  });

  it('stops between steps when the run is cancelled', async () => {
    const ex = new Executor();
    const controller = new AbortController();
    const run = ex.run(doc, {
      baseDir: '.',
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.node === 'sampler') controller.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(RunCancelled);
    await ex.dispose();
  });
});
