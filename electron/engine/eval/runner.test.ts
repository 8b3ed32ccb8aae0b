// Evaluation end to end with the real executor and the zoo's weights: the templates score as the zoo measured them
// (README "Built-in models"), an untrained projector scores far lower, every dataset format groups as the metrics
// need, and dataset compare computes the shared upstream once per sample.

import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGraphDocument } from '../document.js';
import { Executor } from '../executor.js';
import { createShapesDataset, shapeSamplePng } from '../datasets/index.js';
import { loadEvalSet } from './datasets.js';
import { evaluateGraph } from './runner.js';
import { compareOnDataset } from './compare-dataset.js';
import { evalCommand } from '../../cli/eval.js';

const GRAPHS = join(import.meta.dirname, '..', '..', '..', 'graphs');
const graph = (name: string) => parseGraphDocument(readFileSync(join(GRAPHS, `${name}.graph.json`), 'utf8'), `${name}.graph.json`);
const executor = new Executor();
afterAll(() => executor.dispose());

describe('evaluateGraph on shapes', () => {
  it('BLIP-2 captions: high CIDEr-D and colour/shape accuracy with its zoo weights; a fresh MLP in place of the Q-Former scores far lower', async () => {
    const set = loadEvalSet('shapes', { task: 'caption', limit: 10 });
    expect(set.items[0].references!.length).toBe(4);
    const doc = graph('blip2');
    const res = await evaluateGraph(doc, set, { baseDir: GRAPHS, executor });
    expect(res.paperMetric).toBe('cider');
    expect(res.metrics.both_acc).toBeGreaterThanOrEqual(0.9);
    expect(res.metrics.cider).toBeGreaterThan(3);
    expect(res.samples).toHaveLength(10);
    expect(res.samples[0].reference).toEqual(set.items[0].references);
    const broken = { ...doc, nodes: doc.nodes.map((n) => (n.id === 'qformer' ? { ...n, type: 'projector.mlp', params: {}, weights: undefined } : n)) };
    const worse = await evaluateGraph(broken, set, { baseDir: GRAPHS, executor });
    expect(worse.metrics.cider).toBeLessThan(res.metrics.cider / 3);
    expect(worse.samples.filter((s) => s.miss).length).toBeGreaterThan(res.samples.filter((s) => s.miss).length);
  }, 120_000);

  it('CLIP: zero-shot top-1 over the 18 colour × shape prompts, and retrieval R@K both ways', async () => {
    const doc = graph('clip');
    const zs = await evaluateGraph(doc, loadEvalSet('shapes', { task: 'zero-shot', limit: 20 }), { baseDir: GRAPHS, executor });
    expect(zs.metrics.top1).toBeGreaterThanOrEqual(0.85);
    expect(zs.metrics.top5).toBeGreaterThanOrEqual(zs.metrics.top1);
    const rt = await evaluateGraph(doc, loadEvalSet('shapes', { task: 'retrieval', limit: 20 }), { baseDir: GRAPHS, executor });
    expect(Object.keys(rt.metrics).sort()).toEqual(['i2t_r1', 'i2t_r10', 'i2t_r5', 't2i_r1', 't2i_r10', 't2i_r5']);
    // Far above chance (1/20 at R@1).
    expect(rt.metrics.i2t_r5).toBeGreaterThan(0.5);
    expect(rt.metrics.i2t_r10).toBeGreaterThanOrEqual(rt.metrics.i2t_r5);
  }, 120_000);

  it('text-to-image: the pixel reader judges each drawing, CLIP-score from the CLIP template', async () => {
    const set = loadEvalSet('shapes', { task: 'generation', limit: 2 });
    expect(set.items.map((i) => i.request)).toEqual(['Show me a picture of a red circle.', 'Show me a picture of a red square.']);
    const res = await evaluateGraph(graph('text-to-image'), set, { baseDir: GRAPHS, executor, clip: { doc: graph('clip'), baseDir: GRAPHS } });
    expect(res.metrics.drawn_both).toBeGreaterThanOrEqual(0.5);
    expect(res.metrics.clip_score).toBeGreaterThan(0);
    expect(res.metrics.clip_score).toBeLessThanOrEqual(2.5);
  }, 120_000);
});

describe('evaluation sets from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vlmc-evalset-'));
  const shapes = createShapesDataset({ split: 'eval', numSamples: 3, minShapes: 1, maxShapes: 1 });

  it('COCO captions: one item per image with all its captions', async () => {
    const images = [];
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(dir, `im${i}.png`), await shapeSamplePng(shapes.get(i)));
      images.push({ id: i, file_name: `im${i}.png` });
    }
    const annotations = [0, 0, 1, 2, 2, 2].map((image_id, k) => ({ id: k, image_id, caption: `caption ${k}` }));
    writeFileSync(join(dir, 'coco.json'), JSON.stringify({ images, annotations }));
    const set = loadEvalSet(join(dir, 'coco.json'), { task: 'caption' });
    expect(set.items.map((i) => i.references)).toEqual([['caption 0', 'caption 1'], ['caption 2'], ['caption 3', 'caption 4', 'caption 5']]);
  });

  it('VQAv2 questions + annotations: images by their COCO names, answers compared as the official evaluation does', async () => {
    const vqa = join(dir, 'vqa');
    mkdirSync(vqa);
    for (let i = 0; i < 3; i++) writeFileSync(join(vqa, `COCO_val2014_${String(i + 1).padStart(12, '0')}.png`), await shapeSamplePng(shapes.get(i)));
    const qs = [0, 1, 2].map((i) => ({ question_id: 10 + i, image_id: i + 1, question: 'what color is the shape?' }));
    const anns = [0, 1, 2].map((i) => ({ question_id: 10 + i, image_id: i + 1, answers: Array.from({ length: 10 }, (_, k) => ({ answer: k < 7 ? shapes.get(i).description[0].color : 'blue', answer_id: k + 1 })) }));
    writeFileSync(join(vqa, 'questions.json'), JSON.stringify({ data_subtype: 'val2014', questions: qs }));
    writeFileSync(join(vqa, 'annotations.json'), JSON.stringify({ annotations: anns }));
    expect(() => loadEvalSet(join(vqa, 'annotations.json'), { task: 'vqa' })).toThrow(/annotations\.json is a VQAv2 annotations file: give its questions file with --questions/);
    const set = loadEvalSet(join(vqa, 'annotations.json'), { task: 'vqa', questions: join(vqa, 'questions.json') });
    expect(set.vqaReferences).toBe('official');
    expect(set.items.map((i) => i.sample.imagePath)).toEqual([1, 2, 3].map((i) => join(vqa, `COCO_val2014_${String(i).padStart(12, '0')}.png`)));
    const res = await evaluateGraph(graph('blip2'), set, { baseDir: GRAPHS, executor });
    expect(res.metrics.vqa_accuracy).toBeGreaterThanOrEqual(0);
    expect(res.samples.map((s) => s.input.prompt)).toEqual(qs.map((q) => q.question));
    writeFileSync(join(vqa, 'bad.json'), JSON.stringify({ data_subtype: 'val2014', questions: [{ question_id: 99, image_id: 1, question: 'x' }] }));
    expect(() => loadEvalSet(join(vqa, 'annotations.json'), { task: 'vqa', questions: join(vqa, 'bad.json') })).toThrow(/bad\.json: \$\.questions\[0\]: question 99 has no annotation/);
  }, 60_000);
});

describe('compareOnDataset', () => {
  it('scores the Q-Former and a linear projector on the same samples; the frozen ViT runs once per sample', async () => {
    const set = loadEvalSet('shapes', { task: 'caption', limit: 6 });
    const res = await compareOnDataset(graph('blip2'), { baseDir: GRAPHS, node: 'qformer', with: ['linear'], set, executor: new Executor() });
    expect(res.variants.map((v) => v.nodeType)).toEqual(['projector.qformer', 'projector.linear']);
    expect(res.computeCounts.vit).toBe(6);
    expect(res.computeCounts.qformer).toBe(12);
    expect(res.variants[0].metrics.cider).toBeGreaterThan(res.variants[1].metrics.cider);
    expect(res.variants[1].totalParams).toBeLessThan(res.variants[0].totalParams);
    // Latency counts the cached ViT at the cost it had: the linear variant is not made to look free.
    expect(res.variants[1].latencyMs).toBeGreaterThan(0.3 * res.variants[0].latencyMs);
  }, 120_000);

  it('with training: each variant trains with the recipe first, and reports its training time', async () => {
    const set = loadEvalSet('shapes', { task: 'caption', limit: 4 });
    const res = await compareOnDataset(graph('blip2'), {
      baseDir: GRAPHS, node: 'qformer', with: ['linear'], set, executor: new Executor(),
      train: { steps: 3, recipe: 'blip2-stage2', dataset: 'shapes', batchSize: 2 },
    });
    expect(res.variants[0].training).toBeUndefined();
    expect(res.variants[1].training?.steps).toBe(3);
    expect(res.variants[1].training!.ms).toBeGreaterThan(0);
    expect(res.variants[1].trainableParams).toBe(res.variants[1].nodeParams);
  }, 180_000);
});

describe('vlmc eval', () => {
  it('prints the metric table and writes one JSONL line per sample', async () => {
    const out = mkdtempSync(join(tmpdir(), 'vlmc-eval-cli-'));
    const lines: string[] = [];
    const code = await evalCommand([join(GRAPHS, 'clip.graph.json'), '--dataset', 'shapes', '--limit', '5', '--out', out], (l) => lines.push(l));
    expect(code).toBe(0);
    expect(lines.join('\n')).toMatch(/top1\s+top5/);
    const samples = readFileSync(join(out, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(samples).toHaveLength(5);
    expect(Object.keys(samples[0]).sort()).toEqual(['id', 'input', 'latency_ms', 'miss', 'prediction', 'reference', 'scores']);
    expect(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).paper_metric).toBe('top1');
  }, 60_000);
});
