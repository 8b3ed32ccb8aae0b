import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraphDocument, parseGraphDocument } from './document.js';
import { Executor, RunCancelled, RunError, type RunEvent } from './executor.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
const loadTemplate = (name: string): GraphDocument =>
  parseGraphDocument(readFileSync(join(graphsDir, name), 'utf8'), name);

/** Replaces a node's type as the app's "Replace with…" does: same id and edges, default params, no weights file. */
function swapNode(doc: GraphDocument, id: string, type: string): GraphDocument {
  return { ...doc, nodes: doc.nodes.map((n) => (n.id === id ? { id: n.id, type, typeVersion: 1, params: {}, frozen: n.frozen, adapters: n.adapters } : n)) };
}

describe('executor', () => {
  let image: string;
  const ex = new Executor();
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'composer-exec-'));
    image = join(dir, 'red.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#e33' } }).png().toFile(image);
  });
  afterAll(() => ex.dispose());

  it('runs BLIP-2 to text, then an identical run computes nothing', async () => {
    const doc = loadTemplate('blip2.graph.json');
    const events: RunEvent[] = [];
    const first = await ex.run(doc, { baseDir: graphsDir, inputs: { image: { path: image } }, onEvent: (e) => events.push(e) });
    expect(typeof first.outputs.llm.text).toBe('string');
    expect((first.outputs.llm.text as string).length).toBeGreaterThan(0);
    expect(first.computed).toContain('qformer');
    expect(events.filter((e) => e.type === 'started').map((e) => e.node)).toEqual(first.computed);
    expect(events.some((e) => e.type === 'progress' && e.node === 'llm')).toBe(true);
    const again = await ex.run(doc, { baseDir: graphsDir, inputs: { image: { path: image } } });
    expect(again.computed).toEqual([]);
    expect(again.outputs.llm.text).toBe(first.outputs.llm.text);
  });

  it('a projector swap recomputes only the projector and what follows', async () => {
    const doc = loadTemplate('blip2.graph.json');
    await ex.run(doc, { baseDir: graphsDir, inputs: { image: { path: image } } });
    const swapped = swapNode(doc, 'qformer', 'projector.mlp');
    const res = await ex.run(swapped, { baseDir: graphsDir, inputs: { image: { path: image } } });
    expect(new Set(res.computed)).toEqual(new Set(['qformer', 'merge', 'llm', 'answer']));
    expect(res.cached).toEqual(expect.arrayContaining(['image', 'vit', 'prompt', 'tokenize', 'embed']));
  });

  it('a different image recomputes the vision path but not the text path', async () => {
    const doc = loadTemplate('blip2.graph.json');
    const other = join(mkdtempSync(join(tmpdir(), 'composer-exec-')), 'blue.png');
    await sharp({ create: { width: 80, height: 80, channels: 3, background: '#33e' } }).png().toFile(other);
    await ex.run(doc, { baseDir: graphsDir, inputs: { image: { path: image } } });
    const res = await ex.run(doc, { baseDir: graphsDir, inputs: { image: { path: other } } });
    expect(res.computed).toEqual(expect.arrayContaining(['image', 'vit', 'qformer', 'llm']));
    expect(res.cached).toEqual(expect.arrayContaining(['prompt', 'tokenize', 'embed']));
  });

  it('cancellation stops a run', async () => {
    const doc = loadTemplate('blip2.graph.json');
    const fresh = new Executor();
    const controller = new AbortController();
    const run = fresh.run(doc, {
      baseDir: graphsDir,
      inputs: { image: { path: image } },
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'started' && e.node === 'qformer') controller.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(RunCancelled);
    await fresh.dispose();
  });

  it('an invalid graph is refused with a diagnostic naming the node', async () => {
    const doc = loadTemplate('blip2.graph.json');
    const broken = { ...doc, edges: doc.edges.filter((e) => !(e.to.node === 'qformer')) };
    const err = await ex.run(broken, { baseDir: graphsDir, inputs: { image: { path: image } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunError);
    expect((err as RunError).message).toMatch(/qformer/);
    expect((err as RunError).diagnostics.length).toBeGreaterThan(0);
  });

  it('a missing image names the image node', async () => {
    const doc = loadTemplate('blip2.graph.json');
    const err = await ex.run(doc, { baseDir: graphsDir, inputs: { image: { path: '/nonexistent/x.png' } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunError);
    expect((err as RunError).nodeId).toBe('image');
    expect((err as RunError).message).toMatch(/x\.png/);
  });
});

describe('fused mode', () => {
  it('the fused vision path (ViT → Q-Former) equals the per-node run', async () => {
    const { runModel } = await import('../onnx/ort.js');
    const { tensorToNumbers } = await import('../onnx/ir.js');
    const doc = loadTemplate('blip2.graph.json');
    const dir = mkdtempSync(join(tmpdir(), 'composer-fuse-'));
    const img = join(dir, 'green.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3c3' } }).png().toFile(img);
    const ex = new Executor();
    const perNode = await ex.run(doc, { baseDir: graphsDir, targets: ['qformer'], inputs: { image: { path: img } } });
    const fused = await ex.fuse(doc, graphsDir, ['vit', 'qformer']);
    expect([...fused.inputs.keys()]).toEqual(['image.pixel_values']);
    const out = await runModel(fused.model, { 'image.pixel_values': perNode.outputs.image.pixel_values as never });
    const a = tensorToNumbers(out['qformer/image_features']);
    const b = tensorToNumbers(perNode.outputs.qformer.image_features as never);
    expect(a.length).toBe(b.length);
    let maxErr = 0;
    for (let i = 0; i < a.length; i++) maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
    expect(maxErr).toBeLessThan(1e-5);
    await ex.dispose();
  });
});
