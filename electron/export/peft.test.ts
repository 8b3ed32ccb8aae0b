import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Tensor, tensorToNumbers } from '../onnx/ir.js';
import { runModel } from '../onnx/ort.js';
import type { OnnxFragment } from '../nodes/types.js';
import { readPeftAdapter } from '../nodes/adapters/peft-format.js';
import { parseGraphDocument } from '../engine/document.js';
import { Executor } from '../engine/executor.js';
import { Rng } from '../engine/rng.js';
import { train } from '../engine/trainer/trainer.js';
import { runExport } from './index.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
const tmp = mkdtempSync(join(tmpdir(), 'vlmc-peft-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Feeds for a decoder fragment: 5 tokens, empty past, positions 0..4, random embeddings. */
function decoderFeeds(f: OnnxFragment): Record<string, Tensor> {
  const rng = new Rng(3);
  const feeds: Record<string, Tensor> = {};
  const T = 5;
  for (const v of f.graph.inputs) {
    const dims = (v.shape ?? []).map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : v.name.startsWith('past_key_values') ? 0 : T));
    const size = dims.reduce((n, d) => n * d, 1);
    if (v.dtype === 'int64') {
      const data = v.name === 'position_ids' ? BigInt64Array.from({ length: size }, (_, i) => BigInt(i % T)) : new BigInt64Array(size).fill(1n);
      feeds[v.name] = { dtype: 'int64', dims, data };
    } else feeds[v.name] = { dtype: 'float32', dims, data: rng.fillNormal(new Float32Array(size), 1) };
  }
  return feeds;
}

describe('PEFT export of a trained run', () => {
  it('writes adapters/<node>/ in peft format with the trained weights, and --merge base weights that compute the same', async () => {
    const out = join(tmp, 'run');
    const res = await train({
      graph: parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json'), baseDir: graphsDir,
      recipe: 'llava-stage2', adapter: { method: 'lora', config: {} }, steps: 2, batchSize: 2, learningRate: 1e-2, dataset: 'shapes', datasetSize: 4, out,
    });
    const doc = parseGraphDocument(readFileSync(join(out, 'graph.json'), 'utf8'), 'graph.json');
    const peftDir = join(out, 'peft');
    const result = await runExport(doc, 'peft', { baseDir: out, outDir: peftDir, merge: true });
    expect(result.files.map((f) => f.path)).toEqual(['adapters/llm/adapter_model.safetensors', 'adapters/llm/adapter_config.json', 'merged/llm.safetensors']);
    const config = JSON.parse(readFileSync(join(peftDir, 'adapters/llm/adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config.peft_type).toBe('LORA');

    // The adapter read back holds exactly the trained LoRA weights.
    const loaded = readPeftAdapter(join(peftDir, 'adapters/llm'));
    const trained = res.built.trainables.filter((t) => t.node === 'llm');
    expect(loaded.weights.size).toBe(trained.length);
    for (const t of trained) expect(Array.from(tensorToNumbers(loaded.weights.get(t.weight)!))).toEqual(Array.from(tensorToNumbers(res.params.get(t.name)!)));

    // Base + LoRA equals the merged base weights without the adapter.
    const executor = new Executor();
    try {
      const adapted = await executor.fragmentOf(doc, out, 'llm');
      const mergedDoc = structuredClone(doc);
      const llm = mergedDoc.nodes.find((n) => n.id === 'llm')!;
      llm.adapters = [];
      llm.weights = { path: 'peft/merged/llm.safetensors', sha256: result.files.find((f) => f.path === 'merged/llm.safetensors')!.sha256 };
      const merged = await executor.fragmentOf(mergedDoc, out, 'llm');
      expect(merged.graph.nodes.length).toBeLessThan(adapted.graph.nodes.length);
      const model = (f: OnnxFragment) => ({ irVersion: 8, producerName: 't', producerVersion: '0', opsets: { '': f.opset }, graph: f.graph, metadata: {} });
      const feeds = decoderFeeds(adapted);
      const a = tensorToNumbers((await runModel(model(adapted), feeds)).logits);
      const m = tensorToNumbers((await runModel(model(merged), feeds)).logits);
      let maxDiff = 0;
      a.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - m[i]))));
      expect(maxDiff).toBeLessThan(1e-3);
      // ... and the trained LoRA did change the model (the base alone computes something else).
      const bareDoc = structuredClone(doc);
      bareDoc.nodes.find((n) => n.id === 'llm')!.adapters = [];
      const base = tensorToNumbers((await runModel(model(await executor.fragmentOf(bareDoc, out, 'llm')), feeds)).logits);
      let moved = 0;
      base.forEach((v, i) => (moved = Math.max(moved, Math.abs(v - m[i]))));
      expect(moved).toBeGreaterThan(10 * maxDiff);
    } finally {
      await executor.dispose();
    }
  }, 60_000);

  it('a graph without adapters is a clear error', async () => {
    const doc = parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');
    await expect(runExport(doc, 'peft', { baseDir: graphsDir, outDir: join(tmp, 'none') })).rejects.toThrow(/has no node with adapters/);
  });
});
