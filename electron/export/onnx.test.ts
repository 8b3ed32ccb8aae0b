import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Tensor, tensorToNumbers } from '../onnx/ir.js';
import { fromOrtTensor, toOrtTensor } from '../onnx/ort.js';
import { loadModel } from '../onnx/proto.js';
import { type GraphDocument, parseGraphDocument } from '../engine/document.js';
import { Executor } from '../engine/executor.js';
import { type ExportJobEvent, exportGraph, readManifest, verifyExport, visionPath } from './index.js';
import { exportFusedOnnx, exportTritonRepository } from './onnx.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
const blip2 = (): GraphDocument => parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = tensorToNumbers(a);
  const y = tensorToNumbers(b);
  expect(x.length).toBe(y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('fused ONNX export', () => {
  const executor = new Executor();
  let pixels: Tensor;
  let reference: Tensor;
  beforeAll(async () => {
    const img = join(mkdtempSync(join(tmpdir(), 'composer-onnx-')), 'img.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#2a7' } }).png().toFile(img);
    const perNode = await executor.run(blip2(), { baseDir: graphsDir, targets: ['qformer'], inputs: { image: { path: img } } });
    pixels = perNode.outputs.image.pixel_values as Tensor;
    reference = perNode.outputs.qformer.image_features as Tensor;
  });
  afterAll(() => executor.dispose());

  it('finds the vision path: encoder and projector, not the text side', () => {
    expect(visionPath(blip2(), executor.catalog)).toEqual(['vit', 'qformer']);
  });

  it('writes one model with external data that loads in ORT and matches the per-node run', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'composer-onnx-')), 'out');
    const res = await exportFusedOnnx(blip2(), { baseDir: graphsDir, outDir: dir, externalData: 'always', executor });
    expect(res.nodes).toEqual(['vit', 'qformer']);
    expect(res.inputs.map((p) => [p.name, p.source])).toEqual([['pixel_values', 'image.pixel_values']]);
    expect(res.outputs.map((p) => [p.name, p.source])).toEqual([['image_features', 'qformer.image_features']]);
    expect(existsSync(join(dir, 'model.onnx.data'))).toBe(true);
    // The model file itself is small: the weights live in the external data file.
    expect(readFileSync(join(dir, 'model.onnx')).length).toBeLessThan(readFileSync(join(dir, 'model.onnx.data')).length / 4);
    expect(verifyExport(dir)).toEqual([]);
    expect(readManifest(dir).entry.model).toBe('model.onnx');

    // A bare ORT session on the file (from another folder's point of view: ORT resolves the data next to it).
    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
    try {
      expect(session.inputNames).toEqual(['pixel_values']);
      expect(session.outputNames).toEqual(['image_features']);
      const out = await session.run({ pixel_values: toOrtTensor(pixels) });
      const fused = fromOrtTensor(out.image_features);
      expect(fused.dims).toEqual(reference.dims);
      expect(maxAbsDiff(fused, reference)).toBeLessThan(1e-5);
    } finally {
      await session.release();
    }

    // What Netron needs: an opset import, named nodes, value_info for intermediate values.
    const model = loadModel(join(dir, 'model.onnx'));
    expect(model.opsets['']).toBeGreaterThanOrEqual(17);
    const names = model.graph.nodes.map((n) => n.name);
    expect(names.every((n) => n.length > 0)).toBe(true);
    expect(new Set(names).size).toBe(names.length);
    expect(names.some((n) => n.startsWith('vit/')) && names.some((n) => n.startsWith('qformer/'))).toBe(true);
    expect(model.graph.valueInfo.size).toBeGreaterThan(model.graph.nodes.length / 2);
    expect(model.metadata['composer.nodes']).toBe('vit,qformer');
  });

  it('writes an inference-server repository with a config for the fused model', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'composer-triton-')), 'repo');
    const res = await exportTritonRepository(blip2(), { baseDir: graphsDir, outDir: dir, executor, modelName: 'blip2_vision' });
    const config = readFileSync(join(dir, 'blip2_vision', 'config.pbtxt'), 'utf8');
    expect(config).toContain('platform: "onnxruntime_onnx"');
    expect(config).toMatch(/name: "pixel_values"\s+data_type: TYPE_FP32\s+dims: \[ -1, 3, 64, 64 \]/);
    expect(config).toMatch(/name: "image_features"\s+data_type: TYPE_FP32\s+dims: \[ -1, 8, 96 \]/);
    expect(existsSync(join(dir, 'blip2_vision', '1', 'model.onnx'))).toBe(true);
    expect(res.files.map((f) => f.path)).toContain('blip2_vision/1/model.onnx');
    expect(verifyExport(dir)).toEqual([]);
  });

  it('the host entry reports files and a clear error for an unknown format', async () => {
    const events: ExportJobEvent[] = [];
    const folder = join(mkdtempSync(join(tmpdir(), 'composer-export-job-')), 'out');
    const document = JSON.parse(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8')) as unknown;
    await exportGraph({ id: 'e1', document, format: 'fused-onnx', folder, baseDir: graphsDir }, (e) => events.push(e));
    expect(events.map((e) => e.type)).toEqual(['started', 'progress', 'progress', 'done']);
    expect(events.at(-1)!.files!.map((f) => f.path)).toEqual(['model.onnx', 'ports.json']);
    const failed: ExportJobEvent[] = [];
    await exportGraph({ id: 'e2', document, format: 'zip', folder, baseDir: graphsDir }, (e) => failed.push(e));
    expect(failed).toEqual([expect.objectContaining({ type: 'error', message: expect.stringMatching(/unknown export format 'zip'/) })]);
  });
});
