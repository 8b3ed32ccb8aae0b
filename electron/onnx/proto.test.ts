// Proto round trips of real torch.onnx exports through onnxruntime, malformed files, and external data confinement.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { type Model, type Tensor, tensorToNumbers } from './ir.js';
import { loadModel, parseModel, saveModel, serializeModel } from './proto.js';
import { fromOrtTensor, runModel, toOrtTensor } from './ort.js';
import { readSafetensors } from './safetensors.js';

// The reference fixtures live beside the repository (../shared/fixtures).
const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures', import.meta.url));
const NAMES = ['gpt2_tiny', 'vit_tiny', 'mlp_projector'] as const;
const tmp = mkdtempSync(join(tmpdir(), 'proto-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function reference(name: string): { inputs: Record<string, Tensor>; outputs: Record<string, Tensor> } {
  const ref = readSafetensors(join(FIXTURES, `${name}.ref.safetensors`));
  const inputs: Record<string, Tensor> = {};
  const outputs: Record<string, Tensor> = {};
  for (const [k, t] of ref.tensors) {
    if (k.startsWith('input.')) inputs[k.slice('input.'.length)] = t;
    if (k.startsWith('output.')) outputs[k.slice('output.'.length)] = t;
  }
  return { inputs, outputs };
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(a.dims).toEqual(b.dims);
  const x = tensorToNumbers(a);
  const y = tensorToNumbers(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('proto round trip of the fixtures', () => {
  for (const name of NAMES) {
    it(`${name}: parse → serialise → parse runs in ORT and matches PyTorch`, async () => {
      const model = loadModel(join(FIXTURES, `${name}.onnx`));
      const again = parseModel(serializeModel(model).model, { fileName: `${name} (re-serialised)` });
      expect(again.graph.nodes.length).toBe(model.graph.nodes.length);
      expect([...again.graph.initializers.keys()]).toEqual([...model.graph.initializers.keys()]);
      expect(again.opsets).toEqual(model.opsets);
      const { inputs, outputs } = reference(name);
      const got = await runModel(again, inputs);
      expect(Object.keys(got).sort()).toEqual(Object.keys(outputs).sort());
      for (const [k, ref] of Object.entries(outputs)) expect(maxAbsDiff(got[k], ref)).toBeLessThan(5e-6);
    });
  }
});

describe('malformed ONNX files', () => {
  it('random bytes give an error naming the file', () => {
    let seed = 12345;
    const bytes = new Uint8Array(4096).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24) & 0xff);
    const path = join(tmp, 'random.onnx');
    writeFileSync(path, bytes);
    expect(() => loadModel(path)).toThrow(/random\.onnx.*not a valid ONNX model/);
  });

  it('a truncated model gives an error naming the file', () => {
    const full = readFileSync(join(FIXTURES, 'mlp_projector.onnx'));
    const path = join(tmp, 'truncated.onnx');
    writeFileSync(path, full.subarray(0, Math.floor(full.length * 0.6)));
    expect(() => loadModel(path)).toThrow(/truncated\.onnx.*not a valid ONNX model/);
  });

  it('a missing file gives an error naming it', () => {
    expect(() => loadModel(join(tmp, 'nope.onnx'))).toThrow(/cannot read ONNX file '.*nope\.onnx'/);
  });
});

describe('external data', () => {
  it('saves weights beside the model, reloads them, and ORT runs both the reload and the file itself', async () => {
    const model = loadModel(join(FIXTURES, 'mlp_projector.onnx'));
    const dir = join(tmp, 'ext');
    const path = join(dir, 'model.onnx');
    saveModel(path, model, { externalDataName: 'model.onnx.data', externalThreshold: 256 });
    expect(existsSync(join(dir, 'model.onnx.data'))).toBe(true);
    expect(statSync(path).size).toBeLessThan(statSync(join(FIXTURES, 'mlp_projector.onnx')).size / 2);

    const reloaded = loadModel(path);
    for (const [k, t] of model.graph.initializers) {
      expect(Array.from(tensorToNumbers(reloaded.graph.initializers.get(k)!))).toEqual(Array.from(tensorToNumbers(t)));
    }
    const { inputs, outputs } = reference('mlp_projector');
    const got = await runModel(reloaded, inputs);
    expect(maxAbsDiff(got.image_embeds, outputs.image_embeds)).toBeLessThan(5e-6);

    // ORT resolves the external file on its own: the layout we write is the standard one.
    const session = await ort.InferenceSession.create(path);
    try {
      const out = await session.run({ image_features: toOrtTensor(inputs.image_features) });
      expect(maxAbsDiff(fromOrtTensor(out.image_embeds), outputs.image_embeds)).toBeLessThan(5e-6);
    } finally {
      await session.release();
    }
  });

  function modelWithLocation(location: string): { model: Model; bytes: Uint8Array } {
    const model = loadModel(join(FIXTURES, 'mlp_projector.onnx'));
    const s = serializeModel(model, { externalDataName: location, externalThreshold: 256 });
    return { model, bytes: s.model };
  }

  it("refuses a location that escapes the model's folder, naming the tensor", () => {
    const { bytes } = modelWithLocation('../x.bin');
    const dir = join(tmp, 'escape', 'inner');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(tmp, 'escape', 'x.bin'), new Uint8Array(1 << 16));
    writeFileSync(join(dir, 'model.onnx'), bytes);
    expect(() => loadModel(join(dir, 'model.onnx'))).toThrow(/tensor 'linear_\d\.weight'.*'\.\.\/x\.bin' escapes the model's folder/);
  });

  it('refuses an absolute location, naming the tensor', () => {
    const abs = join(tmp, 'abs.bin');
    writeFileSync(abs, new Uint8Array(1 << 16));
    const { bytes } = modelWithLocation(abs);
    const path = join(tmp, 'abs-model.onnx');
    writeFileSync(path, bytes);
    expect(() => loadModel(path)).toThrow(/tensor 'linear_\d\.weight'.*is an absolute path/);
  });

  it('refuses external data when the model did not come from a file', () => {
    const { bytes } = modelWithLocation('w.bin');
    expect(() => parseModel(bytes, { fileName: 'mem.onnx' })).toThrow(/mem\.onnx.*tensor 'linear_\d\.weight'.*not loaded from a file/);
  });
});
