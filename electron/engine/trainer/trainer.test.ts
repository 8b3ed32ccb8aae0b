import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tensorToNumbers } from '../../onnx/ir.js';
import { readSafetensors } from '../../onnx/safetensors.js';
import { type GraphDocument, graphDocumentFromJson, parseGraphDocument } from '../document.js';
import { Executor } from '../executor.js';
import { createShapesDataset, shapeSamplePng } from '../datasets/index.js';
import { type TrainerEvent, TrainControl, train } from './trainer.js';
import { loadCheckpoint } from './checkpoint.js';
import { collate, loadSplits } from './batches.js';
import { learningRateAt } from './schedule.js';
import { nodeTrainsItself } from './plan.js';
import { defaultCatalog } from '../../nodes/catalog.js';

const graphsDir = join(import.meta.dirname, '..', '..', '..', 'graphs');
const blip2 = (): GraphDocument => parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');
const tmp = mkdtempSync(join(tmpdir(), 'vlmc-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const clipGraph = (): GraphDocument =>
  graphDocumentFromJson(
    {
      format: 'composer.graph',
      version: 1,
      name: 'tiny clip',
      nodes: [
        { id: 'image', type: 'io.image', params: { size: 64 } },
        { id: 'vit', type: 'encoder.clip_vit', params: {} },
        { id: 'caption', type: 'io.text', params: {} },
        { id: 'tokenize', type: 'text.tokenize', params: {} },
        { id: 'text', type: 'encoder.clip_text', params: {} },
      ],
      edges: [
        { from: { node: 'image', port: 'pixel_values' }, to: { node: 'vit', port: 'pixel_values' } },
        { from: { node: 'caption', port: 'text' }, to: { node: 'tokenize', port: 'text' } },
        { from: { node: 'tokenize', port: 'input_ids' }, to: { node: 'text', port: 'input_ids' } },
        { from: { node: 'tokenize', port: 'attention_mask' }, to: { node: 'text', port: 'attention_mask' } },
      ],
    },
    'clip',
  );

/** Text-only LM: prompt → tokenize → embed → decoder (the `lm` recipe on plain captions). */
const textLmGraph = (): GraphDocument =>
  graphDocumentFromJson(
    {
      format: 'composer.graph',
      version: 1,
      name: 'tiny lm',
      nodes: [
        { id: 'prompt', type: 'io.text', params: { text: 'Describe the image.' } },
        { id: 'tokenize', type: 'text.tokenize', params: {} },
        { id: 'embed', type: 'llm.embed_tokens', params: { flavour: 'gpt2' } },
        { id: 'llm', type: 'llm.decoder', params: { flavour: 'gpt2' } },
      ],
      edges: [
        { from: { node: 'prompt', port: 'text' }, to: { node: 'tokenize', port: 'text' } },
        { from: { node: 'tokenize', port: 'input_ids' }, to: { node: 'embed', port: 'input_ids' } },
        { from: { node: 'embed', port: 'inputs_embeds' }, to: { node: 'llm', port: 'inputs_embeds' } },
        { from: { node: 'tokenize', port: 'attention_mask' }, to: { node: 'llm', port: 'attention_mask' } },
      ],
    },
    'lm',
  );

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Loss over a fixed batch must fall: the mean of the last 3 steps well below the first step. */
function expectFalling(losses: number[], minDrop: number): void {
  expect(losses.every(Number.isFinite)).toBe(true);
  expect(losses[0] - mean(losses.slice(-3))).toBeGreaterThan(minDrop);
}

describe('trainer: the loss goes down for each recipe', () => {
  it('blip2-stage2 (Q-Former through the frozen LLM; ViT and embed are a cached frozen prefix)', async () => {
    const steps: Array<Extract<TrainerEvent, { type: 'step' }>> = [];
    let started: Extract<TrainerEvent, { type: 'started' }> | undefined;
    const res = await train({
      graph: blip2(), baseDir: graphsDir, recipe: 'blip2-stage2', steps: 15, batchSize: 4, learningRate: 3e-3, dataset: 'shapes',
      datasetSize: 16, fixedBatch: true,
      onEvent: (e) => {
        if (e.type === 'step') steps.push(e);
        if (e.type === 'started') started = e;
      },
    });
    expect(started?.nodes).toEqual({ train: ['qformer', 'merge', 'llm'], prefix: ['vit', 'embed'] });
    expectFalling(res.losses, 0.15);
    // Every step event is JSON-safe and carries the numbers the chart needs.
    for (const e of steps) {
      const back = JSON.parse(JSON.stringify(e)) as typeof e;
      expect(typeof back.loss).toBe('number');
      expect(back.samplesPerSec).toBeGreaterThan(0);
      expect(back.lr).toBeGreaterThan(0);
    }
    expect(res.built.trainables.every((t) => t.node === 'qformer')).toBe(true);
  });

  it('lm (decoder with its tied embedding, text only)', async () => {
    const res = await train({
      graph: textLmGraph(), baseDir: graphsDir, recipe: 'lm', steps: 12, batchSize: 4, learningRate: 3e-3, dataset: 'shapes',
      datasetSize: 16, fixedBatch: true,
    });
    expectFalling(res.losses, 1.0);
    // The Embed tokens node reads the decoder's table: one trainable tensor, not two.
    const names = res.built.trainables.map((t) => t.name);
    expect(names).toContain('llm/embed_tokens.weight');
    expect(names).not.toContain('embed/embed_tokens.weight');
  });

  it("lm on LLaMA (untied head): the Embed tokens node's own table trains, is written to its file and is what runs", async () => {
    const llama = (embedFrozen: boolean): GraphDocument => {
      const g = textLmGraph();
      for (const n of g.nodes) if (n.type === 'llm.embed_tokens' || n.type === 'llm.decoder') n.params = { ...n.params, flavour: 'llama' };
      g.nodes.find((n) => n.id === 'embed')!.frozen = embedFrozen;
      return g;
    };
    const out = join(tmp, 'llama-lm');
    const res = await train({
      graph: llama(false), baseDir: graphsDir, recipe: 'lm', steps: 4, batchSize: 4, learningRate: 3e-3, dataset: 'shapes', datasetSize: 16,
      fixedBatch: true, out,
    });
    const table = res.built.trainables.find((t) => t.node === 'embed');
    expect(table?.weight).toBe('embed_tokens.weight');
    const before = tensorToNumbers(res.built.initial.get(table!.name)!);
    const saved = readSafetensors(join(out, 'weights', 'embed.safetensors')).tensors.get('embed_tokens.weight')!;
    expect(tensorToNumbers(saved).some((v, i) => v !== before[i])).toBe(true);
    // The trained graph loads the table from the file, so a different graph seed no longer changes the model.
    const doc = parseGraphDocument(readFileSync(join(out, 'graph.json'), 'utf8'), 'graph.json');
    expect(doc.nodes.find((n) => n.id === 'embed')!.weights?.path).toBe('weights/embed.safetensors');
    const executor = new Executor();
    try {
      const a = await executor.run(doc, { baseDir: out, targets: ['llm'] });
      const b = await executor.run({ ...doc, seed: 1234 }, { baseDir: out, targets: ['llm'] });
      expect(b.outputs.llm.text).toBe(a.outputs.llm.text);
    } finally {
      await executor.dispose();
    }
    // Frozen on the canvas, it stays frozen while the decoder trains (a GPT-2 table trains with its decoder).
    expect(nodeTrainsItself(llama(true), defaultCatalog, 'embed')).toBe(false);
    expect(nodeTrainsItself(llama(false), defaultCatalog, 'embed')).toBe(true);
    expect(nodeTrainsItself({ ...textLmGraph(), nodes: textLmGraph().nodes.map((n) => (n.id === 'embed' ? { ...n, frozen: true } : n)) }, defaultCatalog, 'embed')).toBe(true);
  });

  it('llava-stage2 with --adapter lora (projector + LoRA on the frozen LLM)', async () => {
    const res = await train({
      graph: blip2(), baseDir: graphsDir, recipe: 'llava-stage2', adapter: { method: 'lora', config: {} }, steps: 12, batchSize: 4,
      learningRate: 3e-3, dataset: 'shapes', datasetSize: 16, fixedBatch: true,
    });
    expectFalling(res.losses, 0.15);
    const llm = res.built.trainables.filter((t) => t.node === 'llm').map((t) => t.weight);
    expect(llm.length).toBeGreaterThan(0);
    expect(llm.every((w) => w.includes('lora_'))).toBe(true);
  });

  it('clip (symmetric InfoNCE, learnable temperature), with retrieval R@1 at eval', async () => {
    const evals: Array<Record<string, number>> = [];
    const res = await train({
      graph: clipGraph(), baseDir: graphsDir, recipe: 'clip', steps: 20, batchSize: 8, learningRate: 5e-4, dataset: 'shapes',
      datasetSize: 16, fixedBatch: true, evalAtEnd: true, evalSamples: 8,
      onEvent: (e) => e.type === 'eval' && evals.push(e.metrics),
    });
    expectFalling(res.losses, 0.3);
    expect(res.params.get('itc.logit_scale')).toBeDefined();
    expect(evals[0]?.retrieval_r1).toBeGreaterThanOrEqual(0);
    expect(evals[0]?.eval_loss).toBeGreaterThan(0);
  });
});

describe('trainer: checkpoints and resume', () => {
  it('3 steps + resume + 3 steps reproduces 6 straight steps bit for bit', async () => {
    const common = {
      baseDir: graphsDir, recipe: 'blip2-stage2', steps: 6, batchSize: 3, learningRate: 2e-3, dataset: 'shapes', datasetSize: 7, seed: 5,
    } as const;
    const straight = await train({ ...common, graph: blip2() });
    const dir = join(tmp, 'resume');
    const control = new TrainControl();
    const first = await train({
      ...common, graph: blip2(), checkpointDir: dir, control,
      onEvent: (e) => e.type === 'step' && e.step === 3 && control.stop(),
    });
    expect(first.steps).toBe(3);
    const ck = loadCheckpoint(dir);
    expect(ck.meta.step).toBe(3);
    expect(ck.meta.sampler.position).toBeGreaterThan(0);
    expect(ck.state.size).toBe(ck.params.size * 2);
    const second = await train({ ...common, graph: blip2(), resume: dir });
    expect(second.losses).toEqual(straight.losses);
    for (const [k, v] of straight.params) expect(Array.from(second.params.get(k)!.data as Float32Array)).toEqual(Array.from(v.data as Float32Array));
  });

  it('--out holds graph.json + weights/ + checkpoints/; frozen nodes are unchanged, trained ones changed; it runs', async () => {
    const out = join(tmp, 'out');
    const res = await train({
      graph: blip2(), baseDir: graphsDir, recipe: 'blip2-stage2', steps: 3, batchSize: 2, learningRate: 1e-2, dataset: 'shapes', datasetSize: 4, out,
    });
    const doc = parseGraphDocument(readFileSync(join(out, 'graph.json'), 'utf8'), 'graph.json');
    const qformer = doc.nodes.find((n) => n.id === 'qformer')!;
    expect(qformer.weights?.path).toBe('weights/qformer.safetensors');
    // Frozen nodes keep loading the files they loaded before (the template's zoo weights), from the new folder.
    const original = blip2();
    for (const n of doc.nodes.filter((x) => x.id !== 'qformer')) {
      const o = original.nodes.find((x) => x.id === n.id)!;
      expect(n.weights && resolve(out, n.weights.path), n.id).toBe(o.weights && resolve(graphsDir, o.weights.path));
    }
    const saved = readSafetensors(join(out, 'weights', 'qformer.safetensors')).tensors;
    let changed = 0;
    for (const t of res.built.trainables) {
      const before = tensorToNumbers(res.built.initial.get(t.name)!);
      const after = tensorToNumbers(saved.get(t.weight)!);
      expect(after.length).toBe(before.length);
      if (after.some((v, i) => v !== before[i])) changed++;
    }
    expect(changed).toBeGreaterThan(res.built.trainables.length / 2);
    expect(readFileSync(join(out, 'checkpoints', 'step-000003.safetensors')).length).toBeGreaterThan(0);

    // The folder runs through the executor; frozen fragments are bit-identical to the untrained graph's.
    const executor = new Executor();
    try {
      for (const id of ['vit', 'llm']) {
        const before = await executor.fragmentOf(blip2(), graphsDir, id);
        const after = await executor.fragmentOf(doc, out, id);
        for (const w of before.weights) {
          expect(Buffer.from((after.graph.initializers.get(w)!.data as Float32Array).buffer).equals(Buffer.from((before.graph.initializers.get(w)!.data as Float32Array).buffer))).toBe(true);
        }
      }
      const trainedQ = await executor.fragmentOf(doc, out, 'qformer');
      const w = res.built.trainables[0];
      expect(Array.from(tensorToNumbers(trainedQ.graph.initializers.get(w.weight)!))).toEqual(Array.from(tensorToNumbers(saved.get(w.weight)!)));
      const png = await shapeSamplePng(createShapesDataset({ numSamples: 1 }).get(0));
      const run = await executor.run(doc, { baseDir: out, inputs: { image: { bytes: png } } });
      expect(run.computed).toContain('qformer');
      expect(typeof run.outputs.llm?.text).toBe('string');
    } finally {
      await executor.dispose();
    }
  });
});

describe('trainer: data', () => {
  it('a bad dataset file gives an error naming the file and the line', async () => {
    const file = join(tmp, 'bad.jsonl');
    writeFileSync(file, '{"image": "a.png", "caption": "a red circle"}\n{"image": "b.png", "caption": 3}\n');
    writeFileSync(join(tmp, 'a.png'), await shapeSamplePng(createShapesDataset({ numSamples: 1 }).get(0)));
    writeFileSync(join(tmp, 'b.png'), await shapeSamplePng(createShapesDataset({ numSamples: 1 }).get(0)));
    await expect(train({ graph: blip2(), baseDir: graphsDir, recipe: 'blip2-stage2', steps: 1, dataset: file })).rejects.toThrow(
      `${file}:2: field 'caption'`,
    );
  });

  it('trains on a captions JSONL file', async () => {
    const file = join(tmp, 'good.jsonl');
    writeFileSync(file, '{"image": "a.png", "caption": "a small red circle on the left"}\n{"image": "b.png", "caption": "a large blue square"}\n');
    const res = await train({ graph: blip2(), baseDir: graphsDir, recipe: 'llava-stage1', steps: 2, batchSize: 2, dataset: file });
    expect(res.losses).toHaveLength(2);
  });

  it('augmented shapes: training pictures are degraded, eval pictures are measured as drawn', () => {
    const splits = loadSplits('shapes', { size: 64, seed: 3, shapes: { augment: 1 } });
    expect(splits.train.some((s) => s.imageDegradation !== undefined || s.image?.width !== 64)).toBe(true);
    expect(splits.eval.every((s) => s.imageDegradation === undefined && s.image?.width === 64)).toBe(true);
  });

  it('collate right-pads rows; the schedule warms up then decays', () => {
    const row = (v: number[]) => ({ dtype: 'int64' as const, dims: [1, v.length], data: BigInt64Array.from(v.map(BigInt)) });
    const t = collate('labels', [row([1, 2, 3]), row([4])], -100);
    expect(t.dims).toEqual([2, 3]);
    expect(Array.from(t.data as BigInt64Array, Number)).toEqual([1, 2, 3, 4, -100, -100]);
    const o = { peakLr: 1, totalSteps: 10, warmupSteps: 2 };
    expect(learningRateAt(1, o)).toBeCloseTo(1 / 3);
    expect(learningRateAt(3, o)).toBe(1);
    expect(learningRateAt(10, o)).toBeLessThan(0.05);
  });
});
