// Runs a graph over an evaluation set with the real executor, as a user runs it (the image to every io.image node,
// the prompt or question to its io.text node), and scores the answers with the papers' metrics (metrics/):
// caption → BLEU-1..4, ROUGE-L, CIDEr-D; vqa → VQA accuracy; retrieval → R@1/5/10 both ways from the graph's image
// and text towers; zero-shot → top-1/top-5 from its classifier's scores; generation → the pixel reader's colour /
// shape accuracy of each drawing, and CLIP-score when a CLIP graph is given. Every sample is kept (input, reference,
// prediction, its scores, whether it is a miss) so a user can read the misses.

import type { GraphDocument } from '../document.js';
import { Executor, RunCancelled, type RunInput } from '../executor.js';
import { encodePng, decodeImage } from '../image.js';
import { loadSampleImage } from '../datasets/index.js';
import { imagesToPng } from '../host-steps/io.js';
import { mapRunInputs } from '../run-io.js';
import type { Tensor } from '../../onnx/ir.js';
import { tensorToNumbers } from '../../onnx/ir.js';
import { type EvalItem, type EvalSet, type EvalTask, EvalError } from './datasets.js';
import { captionMetrics } from './metrics/caption.js';
import { clipScore, cosine } from './metrics/clip-score.js';
import { retrievalRecall, zeroShotAccuracy } from './metrics/retrieval.js';
import { judge, readDrawing } from './metrics/shapes.js';
import { vqaMetrics } from './metrics/vqa.js';

/** The metric each task's papers lead with (what the Compare chart and the Train panel put first). */
export const PAPER_METRIC: Record<EvalTask, string> = {
  caption: 'cider',
  vqa: 'vqa_accuracy',
  retrieval: 'i2t_r1',
  'zero-shot': 'top1',
  generation: 'drawn_both',
};

export interface EvalSampleRecord {
  id: string;
  input: { image?: string; prompt?: string };
  /** Reference captions, human answers, the true class or the request. */
  reference: string[];
  prediction: string;
  scores: Record<string, number>;
  /** Wrong by the task's own criterion (see `missOf`). */
  miss: boolean;
  /** Milliseconds of every node this sample needed, cached upstream counted at the cost it had when computed. */
  latencyMs: number;
}

export interface EvalProgress {
  done: number;
  total: number;
  elapsedMs: number;
  etaSeconds: number;
  id: string;
}

export interface EvalOptions {
  baseDir: string;
  executor?: Executor;
  /** Caption task: the user text (default: the graph's own prompt, as the trainer's captioning uses it). */
  prompt?: string;
  /** Generation: a CLIP graph (image tower + text tower + head.zero_shot) that scores each drawing against its request. */
  clip?: { doc: GraphDocument; baseDir: string };
  /**
   * Node time by `${item}|${node}`, filled as nodes are computed: a node served from the cache (an upstream shared by
   * compared variants) is counted at the cost it had, so every variant's latency is its whole pipeline.
   */
  nodeMs?: Map<string, number>;
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  /** Called with each record as soon as it is scored (metrics that need the whole set are filled in at the end). */
  onSample?: (r: EvalSampleRecord, item: EvalItem) => void;
  /** Which nodes each run of the graph computed and which came from the cache. */
  onRun?: (computed: string[], cached: string[]) => void;
}

export interface EvalResult {
  task: EvalTask;
  dataset: string;
  metrics: Record<string, number>;
  /** The paper metric of this task (a key of `metrics`). */
  paperMetric: string;
  samples: EvalSampleRecord[];
  /** Mean per-sample latency. */
  latencyMs: number;
  wallMs: number;
}

/** The task a graph does when none is named: drawing, zero-shot classification, or answering in text. */
export function defaultTask(doc: GraphDocument, set?: { vqa?: boolean }): EvalTask {
  if (doc.nodes.some((n) => n.type === 'diffusion.sampler')) return 'generation';
  if (doc.nodes.some((n) => n.type === 'head.zero_shot')) return 'zero-shot';
  return set?.vqa ? 'vqa' : 'caption';
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

class Clock {
  private readonly t0 = performance.now();
  constructor(private readonly total: number, private readonly on?: (p: EvalProgress) => void) {}
  tick(done: number, id: string): void {
    const elapsedMs = performance.now() - this.t0;
    this.on?.({ done, total: this.total, elapsedMs, etaSeconds: done > 0 ? ((this.total - done) * elapsedMs) / done / 1000 : 0, id });
  }
}

/** Runs the graph for one item and returns the outputs, with its latency (see EvalOptions.nodeMs). */
async function runItem(
  executor: Executor,
  doc: GraphDocument,
  o: EvalOptions,
  item: EvalItem,
  inputs: Record<string, RunInput>,
  targets: string[],
): Promise<{ outputs: Record<string, Record<string, unknown>>; latencyMs: number }> {
  if (o.signal?.aborted) throw new RunCancelled('evaluation cancelled');
  const res = await executor.run(doc, { baseDir: o.baseDir, inputs, targets, signal: o.signal });
  o.onRun?.(res.computed, res.cached);
  let latencyMs = 0;
  for (const [node, ms] of Object.entries(res.timings)) {
    o.nodeMs?.set(`${item.id}|${node}`, ms);
    latencyMs += ms;
  }
  for (const node of res.cached) latencyMs += o.nodeMs?.get(`${item.id}|${node}`) ?? 0;
  return { outputs: res.outputs, latencyMs };
}

async function imageBytes(item: EvalItem): Promise<Uint8Array> {
  return encodePng(await loadSampleImage(item.sample));
}

function imageName(item: EvalItem): string | undefined {
  return item.sample.imagePath ?? (item.sample.image ? `${item.sample.id}.png` : undefined);
}

/** The node and port feeding the graph's io.text_output. */
function textOutput(doc: GraphDocument): { node: string; port: string; target: string } {
  const out = doc.nodes.find((n) => n.type === 'io.text_output');
  if (!out) throw new EvalError(`graph '${doc.name}' has no Text output (io.text_output) node to read answers from`);
  const edge = doc.edges.find((e) => e.to.node === out.id);
  if (!edge) throw new EvalError(`the Text output node '${out.id}' is not connected`);
  return { node: edge.from.node, port: edge.from.port, target: out.id };
}

export async function evaluateGraph(doc: GraphDocument, set: EvalSet, o: EvalOptions): Promise<EvalResult> {
  const started = performance.now();
  const executor = o.executor ?? new Executor();
  try {
    let r: Omit<EvalResult, 'wallMs' | 'latencyMs' | 'dataset' | 'task' | 'paperMetric'>;
    switch (set.task) {
      case 'caption':
      case 'vqa':
        r = await evaluateText(executor, doc, set, o);
        break;
      case 'retrieval':
        r = await evaluateRetrieval(executor, doc, set, o);
        break;
      case 'zero-shot':
        r = await evaluateZeroShot(executor, doc, set, o);
        break;
      case 'generation':
        r = await evaluateGeneration(executor, doc, set, o);
        break;
    }
    return {
      ...r, task: set.task, dataset: set.name, paperMetric: PAPER_METRIC[set.task],
      latencyMs: mean(r.samples.map((s) => s.latencyMs)), wallMs: performance.now() - started,
    };
  } finally {
    if (!o.executor) await executor.dispose();
  }
}

// ---- caption and VQA -------------------------------------------------------------------------------------------

async function evaluateText(executor: Executor, doc: GraphDocument, set: EvalSet, o: EvalOptions) {
  const out = textOutput(doc);
  const hasImage = doc.nodes.some((n) => n.type === 'io.image');
  const clock = new Clock(set.items.length, o.onProgress);
  const records: EvalSampleRecord[] = [];
  for (const [i, item] of set.items.entries()) {
    const prompt = set.task === 'vqa' ? item.question : o.prompt;
    const inputs = mapRunInputs(doc, { ...(hasImage ? { image: { name: `${item.id}.png`, bytes: await imageBytes(item) } } : {}), ...(prompt !== undefined ? { prompt } : {}) });
    const { outputs, latencyMs } = await runItem(executor, doc, o, item, inputs, [out.target]);
    const text = outputs[out.node]?.[out.port];
    if (typeof text !== 'string') throw new EvalError(`sample '${item.id}': node '${out.node}' gave no text on port '${out.port}'`);
    const record: EvalSampleRecord = {
      id: item.id,
      input: { image: imageName(item), ...(prompt !== undefined ? { prompt } : {}) },
      reference: set.task === 'vqa' ? [...new Set(item.answers ?? [])] : (item.references ?? []),
      prediction: text,
      scores: {},
      miss: false,
      latencyMs,
    };
    records.push(record);
    clock.tick(i + 1, item.id);
  }
  const metrics: Record<string, number> = {};
  if (set.task === 'vqa') {
    const v = vqaMetrics(set.items.map((it, i) => ({ prediction: records[i].prediction, answers: it.answers ?? [] })), set.vqaReferences ?? 'official');
    metrics.vqa_accuracy = v.accuracy;
    records.forEach((r, i) => {
      r.scores.vqa_accuracy = v.perSample[i];
      r.miss = v.perSample[i] < 1;
    });
  } else {
    const c = captionMetrics(set.items.map((it, i) => ({ prediction: records[i].prediction, references: it.references ?? [] })));
    Object.assign(metrics, c.metrics);
    records.forEach((r, i) => {
      r.scores = { ...c.perSample[i] };
      r.miss = c.perSample[i].cider < c.metrics.cider;
    });
  }
  // Shapes captions: the zoo's reading of an answer (its first colour word and first shape word; single shapes).
  if (set.task === 'caption' && set.items.every((it) => it.shapes?.length === 1)) {
    let color = 0, shape = 0, both = 0;
    records.forEach((r, i) => {
      const truth = set.items[i].shapes![0];
      const j = judge(r.prediction, truth.color, truth.shape);
      r.scores.color = j.color ? 1 : 0;
      r.scores.shape = j.shape ? 1 : 0;
      color += r.scores.color;
      shape += r.scores.shape;
      both += j.color && j.shape ? 1 : 0;
      r.miss = !(j.color && j.shape);
    });
    const n = records.length;
    Object.assign(metrics, { color_acc: color / n, shape_acc: shape / n, both_acc: both / n });
  }
  records.forEach((r, i) => o.onSample?.(r, set.items[i]));
  return { metrics, samples: records };
}

// ---- retrieval and zero-shot (CLIP-style graphs) ------------------------------------------------------------------

/** The towers of a graph with a head.zero_shot node: who feeds its image and text embeddings, and the labels node. */
function towersOf(doc: GraphDocument): { image: { node: string; port: string }; text: { node: string; port: string }; head: string } {
  const head = doc.nodes.find((n) => n.type === 'head.zero_shot');
  if (!head) throw new EvalError(`graph '${doc.name}' has no zero-shot head (head.zero_shot) whose image and text towers retrieval could use`);
  const from = (port: string) => {
    const e = doc.edges.find((x) => x.to.node === head.id && x.to.port === port);
    if (!e) throw new EvalError(`the zero-shot head '${head.id}' has nothing connected to '${port}'`);
    return e.from;
  };
  return { image: from('image_embeds'), text: from('text_embeds'), head: head.id };
}

function rows(t: unknown, what: string): number[][] {
  if (!t || typeof t !== 'object' || !('dims' in t)) throw new EvalError(`${what} is not a tensor`);
  const tensor = t as Tensor;
  const [n, d] = tensor.dims.length === 2 ? tensor.dims : [1, tensor.dims.at(-1) ?? 0];
  const v = tensorToNumbers(tensor);
  return Array.from({ length: n }, (_, i) => Array.from(v.slice(i * d, (i + 1) * d)));
}

/** Labels typed into the graph's prompt (text.labels splits on ';' and new lines). */
const asLabelText = (labels: readonly string[]) => labels.map((l) => l.replace(/[;\n]+/g, ',')).join(';');

async function textEmbeddings(executor: Executor, doc: GraphDocument, o: EvalOptions, texts: string[], tower: { node: string; port: string }): Promise<{ rows: number[][]; ms: number }> {
  const res = await executor.run(doc, { baseDir: o.baseDir, inputs: mapRunInputs(doc, { prompt: asLabelText(texts) }), targets: [tower.node], signal: o.signal });
  const ms = Object.values(res.timings).reduce((a, b) => a + b, 0);
  return { rows: rows(res.outputs[tower.node]?.[tower.port], `text tower '${tower.node}' output '${tower.port}'`), ms };
}

async function evaluateRetrieval(executor: Executor, doc: GraphDocument, set: EvalSet, o: EvalOptions) {
  const towers = towersOf(doc);
  const texts: string[] = [];
  const textImage: number[] = [];
  set.items.forEach((it, i) => (it.references ?? []).forEach((t) => (texts.push(t), textImage.push(i))));
  const clock = new Clock(set.items.length + 1, o.onProgress);
  const text = await textEmbeddings(executor, doc, o, texts, towers.text);
  clock.tick(1, 'texts');
  const imageRows: number[][] = [];
  const latency: number[] = [];
  for (const [i, item] of set.items.entries()) {
    const inputs = mapRunInputs(doc, { image: { name: `${item.id}.png`, bytes: await imageBytes(item) } });
    const { outputs, latencyMs } = await runItem(executor, doc, o, item, inputs, [towers.image.node]);
    imageRows.push(rows(outputs[towers.image.node]?.[towers.image.port], `image tower '${towers.image.node}'`)[0]);
    latency.push(latencyMs + text.ms / set.items.length);
    clock.tick(i + 2, item.id);
  }
  const similarity = imageRows.map((im) => text.rows.map((t) => cosine(im, t)));
  const r = retrievalRecall(similarity, textImage);
  const records: EvalSampleRecord[] = set.items.map((item, i) => {
    const best = similarity[i].indexOf(Math.max(...similarity[i]));
    return {
      id: item.id, input: { image: imageName(item) }, reference: item.references ?? [], prediction: texts[best],
      scores: { rank: r.imageRanks[i] + 1 }, miss: r.imageRanks[i] > 0, latencyMs: latency[i],
    };
  });
  records.forEach((rec, i) => o.onSample?.(rec, set.items[i]));
  return { metrics: { ...r.metrics }, samples: records };
}

async function evaluateZeroShot(executor: Executor, doc: GraphDocument, set: EvalSet, o: EvalOptions) {
  const labels = set.labels;
  if (!labels) throw new EvalError('zero-shot evaluation needs class labels');
  const towers = towersOf(doc);
  const clock = new Clock(set.items.length, o.onProgress);
  const logits: number[][] = [];
  const records: EvalSampleRecord[] = [];
  for (const [i, item] of set.items.entries()) {
    const inputs = mapRunInputs(doc, { image: { name: `${item.id}.png`, bytes: await imageBytes(item) }, prompt: asLabelText(labels) });
    const { outputs, latencyMs } = await runItem(executor, doc, o, item, inputs, [towers.head]);
    const scores = rows(outputs[towers.head]?.scores, `zero-shot head '${towers.head}' scores`)[0];
    if (scores.length !== labels.length) throw new EvalError(`zero-shot head '${towers.head}' scored ${scores.length} labels, expected ${labels.length}`);
    logits.push(scores);
    records.push({ id: item.id, input: { image: imageName(item) }, reference: [labels[item.label ?? 0]], prediction: labels[scores.indexOf(Math.max(...scores))], scores: {}, miss: false, latencyMs });
    clock.tick(i + 1, item.id);
  }
  const z = zeroShotAccuracy(logits, set.items.map((it) => it.label ?? -1));
  records.forEach((r, i) => {
    r.scores = { top1: z.ranks[i] < 1 ? 1 : 0, top5: z.ranks[i] < 5 ? 1 : 0 };
    r.miss = z.ranks[i] > 0;
    o.onSample?.(r, set.items[i]);
  });
  return { metrics: { ...z.metrics }, samples: records };
}

// ---- generation ---------------------------------------------------------------------------------------------------

const BLANK = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(128) };

/**
 * One drawing of `request`: the graph with its noise and sampler seeded by `seed` (another drawing of the same
 * request; the graph's own seed would re-seed its weights), a blank grey input picture where the graph takes one.
 */
export async function drawRequest(
  executor: Executor,
  doc: GraphDocument,
  o: { baseDir: string; request: string; seed: number; signal?: AbortSignal },
): Promise<{ png: Uint8Array; timings: Record<string, number>; cached: string[] }> {
  const sampler = doc.nodes.find((n) => n.type === 'diffusion.sampler');
  if (!sampler) throw new EvalError(`graph '${doc.name}' has no diffusion.sampler node to draw with`);
  const run = structuredClone(doc);
  for (const n of run.nodes) if (n.type === 'diffusion.noise' || n.type === 'diffusion.sampler') n.params = { ...n.params, seed: o.seed };
  const hasImage = run.nodes.some((n) => n.type === 'io.image');
  const inputs = mapRunInputs(run, { prompt: o.request, ...(hasImage ? { image: { name: 'blank.png', bytes: await encodePng(BLANK) } } : {}) });
  const res = await executor.run(run, { baseDir: o.baseDir, inputs, targets: [sampler.id], signal: o.signal });
  const image = res.outputs[sampler.id]?.image;
  if (!image || typeof image === 'string') throw new EvalError(`sampler '${sampler.id}' gave no image`);
  const [png] = await imagesToPng(image as Tensor, '-1..1', `graph '${doc.name}' drawing`);
  return { png, timings: res.timings, cached: res.cached };
}

async function evaluateGeneration(executor: Executor, doc: GraphDocument, set: EvalSet, o: EvalOptions) {
  const clock = new Clock(set.items.length, o.onProgress);
  const records: EvalSampleRecord[] = [];
  const clipTowers = o.clip ? towersOf(o.clip.doc) : undefined;
  let color = 0, shape = 0, both = 0;
  const clipScores: number[] = [];
  for (const [i, item] of set.items.entries()) {
    if (o.signal?.aborted) throw new RunCancelled('evaluation cancelled');
    const request = item.request ?? item.sample.caption ?? '';
    const seed = Number(/-(\d+)$/.exec(item.id)?.[1] ?? 1);
    const drawn = await drawRequest(executor, doc, { baseDir: o.baseDir, request, seed, signal: o.signal });
    const seen = readDrawing(await decodeImage(drawn.png));
    const truth = item.shapes?.[0];
    const scores: Record<string, number> = {};
    if (truth) {
      scores.color = seen.color === truth.color ? 1 : 0;
      scores.shape = seen.shape === truth.shape ? 1 : 0;
      color += scores.color;
      shape += scores.shape;
      both += scores.color * scores.shape;
    }
    if (o.clip && clipTowers) {
      const inputs = mapRunInputs(o.clip.doc, { image: { name: 'drawing.png', bytes: drawn.png }, prompt: asLabelText([item.sample.caption ?? request]) });
      const res = await executor.run(o.clip.doc, { baseDir: o.clip.baseDir, inputs, targets: [clipTowers.image.node, clipTowers.text.node], signal: o.signal });
      const im = rows(res.outputs[clipTowers.image.node]?.[clipTowers.image.port], 'CLIP image tower')[0];
      const tx = rows(res.outputs[clipTowers.text.node]?.[clipTowers.text.port], 'CLIP text tower')[0];
      scores.clip_score = clipScore(im, tx);
      clipScores.push(scores.clip_score);
    }
    const latencyMs = Object.values(drawn.timings).reduce((a, b) => a + b, 0);
    const record: EvalSampleRecord = {
      id: item.id, input: { prompt: request }, reference: [request], prediction: seen.color || seen.shape ? `a ${seen.color ?? '?'} ${seen.shape ?? '?'}` : '(nothing drawn)',
      scores, miss: truth ? !(scores.color && scores.shape) : false, latencyMs,
    };
    records.push(record);
    o.onSample?.(record, { ...item, sample: { ...item.sample, image: await decodeImage(drawn.png) } });
    clock.tick(i + 1, item.id);
  }
  const n = Math.max(1, records.length);
  const metrics: Record<string, number> = { drawn_color: color / n, drawn_shape: shape / n, drawn_both: both / n };
  if (clipScores.length) metrics.clip_score = mean(clipScores);
  return { metrics, samples: records };
}
