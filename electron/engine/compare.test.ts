import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CompareJobEvent, type CompareProgress, CompareError, compareGraph, compareVariants, parameterCounts, variantDocument } from './compare.js';
import { type GraphDocument, parseGraphDocument } from './document.js';
import { Executor } from './executor.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
const blip2 = (): GraphDocument => parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');

describe('compare', () => {
  let red: string;
  let blue: string;
  const executor = new Executor();
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'composer-compare-'));
    red = join(dir, 'red.png');
    blue = join(dir, 'blue.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#e33' } }).png().toFile(red);
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#33e' } }).png().toFile(blue);
  });
  afterAll(() => executor.dispose());

  it('runs BLIP-2 against mlp and linear projectors, computing the ViT once', async () => {
    const events: CompareProgress[] = [];
    const res = await compareVariants(blip2(), {
      baseDir: graphsDir,
      node: 'qformer',
      with: ['mlp', 'linear'],
      inputs: { image: { path: red } },
      onEvent: (e) => events.push(e),
    });
    expect(res.variants.map((v) => v.nodeType)).toEqual(['projector.qformer', 'projector.mlp', 'projector.linear']);
    // Upstream nodes run once; the swapped node and everything after it run per variant.
    expect(res.computeCounts.vit).toBe(1);
    expect(res.computeCounts.image).toBe(1);
    expect(res.computeCounts.embed).toBe(1);
    expect(res.computeCounts.qformer).toBe(3);
    expect(res.computeCounts.llm).toBe(3);
    for (const v of res.variants.slice(1)) {
      expect(v.cached).toEqual(expect.arrayContaining(['image', 'vit', 'prompt', 'tokenize', 'embed']));
      expect(v.computed).toEqual(expect.arrayContaining(['qformer', 'merge', 'llm']));
      expect(v.notes.join(' ')).toMatch(/freshly initialised/);
      expect(v.notes.join(' ')).toMatch(/image_features \[\w+,\d+,96\]/);
    }
    const vitEvents = events.filter((e) => e.type === 'node' && e.event.node === 'vit').map((e) => (e.type === 'node' ? e.event.type : ''));
    expect(vitEvents.filter((t) => t === 'computed')).toHaveLength(1);
    expect(vitEvents.filter((t) => t === 'cached')).toHaveLength(2);
    for (const v of res.variants) {
      expect(typeof v.output).toBe('string');
      expect(v.outputs[0].node).toBe('answer');
      expect(v.latencyMs).toBeGreaterThan(0);
      // Latency is the sum of the nodes that ran: the cached ViT is not part of a variant's latency.
      expect(v.latencyMs).toBeCloseTo(Object.values(v.timings).reduce((a, b) => a + b, 0), 6);
      // ViT and LLM are frozen: trainable = the projector only (BLIP-2's merge has no weights).
      expect(v.trainableParams).toBe(v.nodeParams);
      expect(v.totalParams).toBeGreaterThan(v.trainableParams);
    }
    // The same frozen parts in every variant: totals differ exactly by the projector's size.
    const [q, mlp, lin] = res.variants;
    expect(q.totalParams - q.nodeParams).toBe(mlp.totalParams - mlp.nodeParams);
    // Linear 64→96 with bias; MLP adds a 96→96 layer.
    expect(lin.nodeParams).toBe(64 * 96 + 96);
    expect(mlp.nodeParams).toBe(64 * 96 + 96 + 96 * 96 + 96);
    // The original graph's answer is reproducible outside the comparison.
    const direct = await executor.run(blip2(), { baseDir: graphsDir, inputs: { image: { path: red } } });
    expect(q.output).toBe(direct.outputs.llm.text);
  });

  it('runs every variant on each image of a set', async () => {
    const res = await compareVariants(blip2(), { baseDir: graphsDir, node: 'qformer', with: ['linear'], images: [red, blue], executor });
    expect(res.variants.map((v) => [v.image, v.variant])).toEqual([[0, 0], [0, 1], [1, 0], [1, 1]]);
    expect(res.variants[2].imageName).toBe('blue.png');
    expect(res.variants[3].cached).toContain('vit');
  });

  it('parameter counts count a tied embedding once and frozen nodes as not trainable', async () => {
    const doc = blip2();
    const all = await parameterCounts(executor, doc, graphsDir);
    const unfrozen = await parameterCounts(executor, { ...doc, nodes: doc.nodes.map((n) => ({ ...n, frozen: false })) }, graphsDir);
    expect(unfrozen.total).toBe(all.total);
    expect(unfrozen.trainable).toBe(all.total);
    expect(all.byNode.embed).toBe(0);
    expect(all.total).toBe(Object.values(all.byNode).reduce((a, b) => a + b, 0));
  });

  it('errors name the unknown type, the missing node and the unmatched port', async () => {
    expect(() => variantDocument(blip2(), 'qformer', 'mlpp', executor)).toThrow(/unknown node type 'mlpp'.*projector\.mlp/);
    expect(() => variantDocument(blip2(), 'nope', 'mlp', executor)).toThrow(/no node 'nope'/);
    expect(() => variantDocument(blip2(), 'qformer', 'io.text', executor)).toThrow(CompareError);
    expect(() => variantDocument(blip2(), 'qformer', 'io.text', executor)).toThrow(/'io.text' \(replacing node 'qformer'\) has no port/);
  });

  it('a swap keeps the main input, leaves out inputs the new type lacks, and keeps a width nothing downstream fixes', async () => {
    const load = (name: string) => parseGraphDocument(readFileSync(join(graphsDir, name), 'utf8'), name);
    const instruct = variantDocument(load('instructblip.graph.json'), 'qformer', 'mlp', executor);
    expect(instruct.doc.edges.filter((e) => e.to.node === 'qformer').map((e) => e.to.port)).toEqual(['vision_features']);
    expect(instruct.notes.join('\n')).toMatch(/qformer_tokenize\.input_ids → qformer\.qformer_input_ids is left out/);
    const mini = load('minigpt4.graph.json');
    const swapped = variantDocument(mini, 'qformer', 'linear', executor);
    // MiniGPT-4's Q-Former feeds another 'auto' projector, so its own output width is kept.
    expect(swapped.doc.nodes.find((n) => n.id === 'qformer')!.params).toEqual({ d_out: 64 });
    expect(swapped.doc.edges.find((e) => e.to.node === 'proj')!.from).toEqual({ node: 'qformer', port: 'image_features' });
    const res = await compareVariants(mini, { baseDir: graphsDir, node: 'qformer', with: ['linear'], inputs: { image: { path: red } }, executor });
    expect(res.variants[1].nodeParams).toBe(64 * 64 + 64);
    expect(res.variants[1].cached).toContain('vit');
  });

  it('the host entry reports results and cached nodes as compare events', async () => {
    const events: CompareJobEvent[] = [];
    await compareGraph(
      {
        id: 'job1',
        document: JSON.parse(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8')) as unknown,
        nodeId: 'qformer',
        candidates: [{ type: 'projector.mlp', params: { depth: 1 } }],
        inputs: { image: { name: 'red.png', bytes: new Uint8Array(readFileSync(red)) }, prompt: 'what color is it?' },
        baseDir: graphsDir,
      },
      (e) => events.push(e),
    );
    expect(events[0]).toMatchObject({ type: 'started', total: 2 });
    expect(events.at(-1)).toMatchObject({ type: 'done', done: 2 });
    const results = events.filter((e) => e.type === 'result');
    expect(results.map((r) => r.nodeType)).toEqual(['projector.qformer', 'projector.mlp']);
    expect(results[1].nodeParams).toBe(64 * 96 + 96);
    expect(events.some((e) => e.type === 'progress' && e.variant === 1 && /node 'vit' cached/.test(e.message ?? ''))).toBe(true);
  });
});
