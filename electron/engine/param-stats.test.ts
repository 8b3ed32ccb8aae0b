import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type GraphDocument, parseGraphDocument } from './document.js';
import { Executor } from './executor.js';
import { parameterStats } from './param-stats.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
/** The BLIP-2 template with seeded weights (no checkpoints), so presets can change freely. */
function blip2(): GraphDocument {
  const doc = parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');
  return { ...doc, nodes: doc.nodes.map(({ weights: _w, ...n }) => n) };
}
const withNode = (doc: GraphDocument, id: string, change: (n: GraphDocument['nodes'][number]) => GraphDocument['nodes'][number]) => ({
  ...doc,
  nodes: doc.nodes.map((n) => (n.id === id ? change(n) : n)),
});

const executor = new Executor();
afterAll(() => executor.dispose());

describe('parameterStats', () => {
  it('reuses the executor\'s built fragments: counting again after a freeze rebuilds nothing', async () => {
    const doc = blip2();
    const first = await parameterStats(executor, doc, graphsDir);
    const fragment = await executor.fragmentOf(doc, graphsDir, 'qformer');
    const frozen = withNode(doc, 'qformer', (n) => ({ ...n, frozen: true }));
    const second = await parameterStats(executor, frozen, graphsDir);
    expect(await executor.fragmentOf(frozen, graphsDir, 'qformer')).toBe(fragment);
    const q = (r: typeof first) => r.nodes.find((n) => n.id === 'qformer')!;
    expect(q(second).params).toBe(q(first).params);
    expect(q(second).trainable).toBe(0);
    expect(second.total.trainable).toBe(first.total.trainable - q(first).params);
  });

  it('counts real-size presets without a checkpoint from a describe-only build, adapters included', async () => {
    let doc = withNode(blip2(), 'vit', (n) => ({ ...n, params: { ...n.params, preset: 'eva-vit-g' } }));
    doc = withNode(doc, 'llm', (n) => ({ ...n, params: { ...n.params, preset: 'opt-2.7b' }, adapters: [{ id: 'l', method: 'lora', config: { r: 8 } }] }));
    const started = performance.now();
    const report = await parameterStats(executor, doc, graphsDir, { tolerateErrors: true });
    const node = (id: string) => report.nodes.find((n) => n.id === id)!;
    expect(node('vit')).toMatchObject({ describeOnly: true, frozen: true, trainable: 0 });
    // EVA ViT-g/14 (BLIP-2's encoder) has about a billion parameters.
    expect(node('vit').params).toBeGreaterThan(0.95e9);
    expect(node('vit').params).toBeLessThan(1.05e9);
    expect(node('vit').bytes).toBe(node('vit').params * 4);
    // OPT-2.7B, and a LoRA of rank 8 on its attention projections trains a tiny share of it.
    expect(node('llm').describeOnly).toBe(true);
    expect(node('llm').params).toBeGreaterThan(2.5e9);
    expect(node('llm').params).toBeLessThan(2.8e9);
    expect(node('llm').adapterParams).toBeGreaterThan(0);
    expect(node('llm').trainable).toBe(node('llm').adapterParams);
    expect(node('qformer').describeOnly).toBeUndefined();
    expect(report.nodes.filter((n) => n.error)).toEqual([]);
    // Nothing of the 3.7 billion parameters was allocated or initialised.
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  it('without tolerateErrors a node that cannot be built fails the report, naming it', async () => {
    const doc = withNode(blip2(), 'qformer', (n) => ({ ...n, params: { num_heads: 3 } }));
    await expect(parameterStats(executor, doc, graphsDir)).rejects.toThrow(/qformer/);
    const tolerant = await parameterStats(executor, doc, graphsDir, { tolerateErrors: true });
    expect(tolerant.nodes.find((n) => n.id === 'qformer')!.error).toMatch(/qformer.*divisible/);
    expect(tolerant.nodes.find((n) => n.id === 'vit')!.params).toBeGreaterThan(0);
  });
});
