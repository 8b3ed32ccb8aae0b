// Whole-model gradients of typical torch.onnx exports (BERT, OPT, LLaMA, CLIP, Q-Former, UNet, Perceiver, ...)
// against PyTorch's. The models and references in testdata/ are written by tools/make_fixtures.py (PyTorch 1.13,
// do_constant_folding=False); CI has no PyTorch, so the committed files are the test data.

import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../onnx/proto.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { tensorToNumbers } from '../onnx/ir.js';
import { createSession, runSession } from '../onnx/ort.js';
import { attachWeightedLoss, compareToReference, gradcheck, promoteInitializersToInputs, splitReference } from './gradcheck.js';
import { buildGradientGraph } from './gradient.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const names = readdirSync(testdata)
  .filter((f) => f.endsWith('.ref.safetensors'))
  .map((f) => f.slice(0, -'.ref.safetensors'.length))
  .sort();

function load(name: string) {
  const model = loadModel(join(testdata, `${name}.onnx`));
  const st = readSafetensors(join(testdata, `${name}.ref.safetensors`));
  return { model, reference: splitReference(st.tensors), metadata: st.metadata };
}

function failures(report: Awaited<ReturnType<typeof gradcheck>>): string[] {
  return [...report.checks, ...report.outputs]
    .filter((c) => !c.ok)
    .map((c) => `${c.name}: max abs ${c.maxAbsError.toExponential(2)}, max rel ${c.maxRelError.toExponential(2)}`);
}

describe('gradients of typical architectures match PyTorch (default tolerances rtol 1e-3, atol 1e-5)', () => {
  it('has the generated architectures', () => {
    expect(names).toEqual(
      expect.arrayContaining([
        'bert_tiny',
        'bloom_tiny',
        'clip_contrastive',
        'clip_text_tiny',
        'convnet_mix',
        'llama_tiny',
        'llava_merge',
        'moe_block',
        'neox_tiny',
        'opt_lm_loss',
        'opt_tiny',
        'perceiver_resampler',
        'qformer_layer',
        'resnet_tiny',
        'siglip_loss',
        'swin_block',
        't5_encoder_tiny',
        'tensor_ops',
        'torch_encoder',
        'unet_block',
        'vision_ops',
        'wav2vec2_frontend',
        'whisper_encoder_tiny',
      ]),
    );
  });

  for (const name of names) {
    it(name, async () => {
      const { model, reference, metadata } = load(name);
      // The file is the export the reference describes (guards against a stale or mismatched pair).
      const ops = [...new Set(model.graph.nodes.map((n) => n.opType))].sort();
      expect(ops.join(',')).toBe(metadata.ops);
      expect(String(model.opsets[''])).toBe(metadata.opset);

      const report = await gradcheck(model, reference, { rtol: 1e-3, atol: 1e-5 });
      expect(failures(report)).toEqual([]);
      // Every float input has a reference gradient, every reference gradient was checked.
      for (const v of model.graph.inputs) if (v.dtype === 'float32') expect(Object.keys(reference.grads)).toContain(v.name);
      expect(report.total).toBe(Object.keys(reference.grads).length);
      expect(report.total).toBeGreaterThan(0);
      expect(report.outputs.length).toBe(model.graph.outputs.length);
    });
  }

  // Training builds the backward graph once for symbolic sizes: every dim of every graph input symbolic here (the
  // exports fix most of them), so shape inference and the rules must work from ranks and run-time shapes alone.
  for (const name of names) {
    it(`${name} with every input dim symbolic`, async () => {
      const { model, reference } = load(name);
      const wrt = Object.keys(reference.grads);
      const { model: promoted, values } = promoteInitializersToInputs(model, wrt);
      const { model: withLoss, loss } = attachWeightedLoss(
        promoted,
        reference.lossWeights,
        model.graph.outputs.map((o) => o.name),
      );
      const inputShapes = Object.fromEntries(
        model.graph.inputs.map((v, i) => [v.name, (v.shape ?? []).map((_, k) => `in${i}_${k}`)]),
      );
      const { model: withGrads, grads } = buildGradientGraph(withLoss, { loss, wrt, inputShapes });
      const session = await createSession(withGrads);
      try {
        const out = await runSession(session, { ...reference.inputs, ...values }, [...grads.values()]);
        const failed = [...grads]
          .map(([w, g]) => compareToReference(w, out[g], tensorToNumbers(reference.grads[w]), { rtol: 1e-3, atol: 1e-5 }))
          .filter((c) => !c.ok)
          .map((c) => `${c.name}: max abs ${c.maxAbsError.toExponential(2)}`);
        expect(failed).toEqual([]);
      } finally {
        await session.release();
      }
    });
  }

  // The same backward graph against central finite differences of a float64 twin of the model (no PyTorch
  // involved), on a sample of elements, with the same default tolerances. The twin rewrites Erf, Conv, InstanceNorm
  // and nearest Resize with float64 ops, so nothing is left in float32.
  for (const name of ['llama_tiny', 'bert_tiny', 'moe_block', 'unet_block']) {
    it(`${name} matches float64 finite differences`, async () => {
      const { model, reference } = load(name);
      const report = await gradcheck(model, reference, {
        rtol: 1e-3,
        atol: 1e-5,
        finiteDifferences: true,
        maxElementsPerTensor: 2,
      });
      expect(report.finiteDifferences).toEqual({ precision: 'float64', float32Ops: [] });
      expect(failures(report)).toEqual([]);
    });
  }

  it('finite differences say which ops still ran in float32', async () => {
    const { model, reference } = load('vision_ops');
    const report = await gradcheck(model, reference, {
      rtol: 2e-2,
      atol: 1e-3,
      finiteDifferences: true,
      maxElementsPerTensor: 2,
    });
    expect(report.finiteDifferences?.precision).toBe('float64');
    expect(report.finiteDifferences?.float32Ops).toEqual(expect.arrayContaining(['ConvTranspose', 'PRelu']));
    expect(failures(report)).toEqual([]);
  });
});
