// The trainer: recipe → plan → one-session train step; then the loop (batches, warmup + cosine LR, clipping, eval,
// checkpoints, pause/stop between steps) and the `--out` folder (graph.json + weights/ + checkpoints/).
// Runs in the engine worker or the CLI; no Electron imports.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { type AdamWConfig, DEFAULT_ADAMW, type OptimizerConfig } from '../../autodiff/optimizers.js';
import { type StepResult, TrainRunner } from '../../autodiff/train-runner.js';
import { GradAccumulator, type MicroBatch } from '../../autodiff/accumulate.js';
import { type Tensor, tensorToNumbers } from '../../onnx/ir.js';
import { createSession, runSession } from '../../onnx/ort.js';
import { type Catalog, defaultCatalog } from '../../nodes/catalog.js';
import { isGeneratingDecoder } from '../../nodes/imported.js';
import { type AdapterSpec, type GraphDocument } from '../document.js';
import { Executor } from '../executor.js';
import { EpochSampler } from '../datasets/sampler.js';
import type { Sample } from '../datasets/types.js';
import { Rng } from '../rng.js';
import { type Checkpoint, type CheckpointMeta, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { type DatasetSplits, type ShapesSceneOptions, SampleBuilder, collate, generationRequest, loadSplits, padValueOf } from './batches.js';
import { type BuiltTraining, buildTraining, emptyPast, lossPorts } from './model.js';
import { type TrainPlan, TrainError, defOf, planTraining } from './plan.js';
import { type Hyper, type Recipe, recipeByName } from './recipes.js';
import { learningRateAt, warmupStepsFor } from './schedule.js';
import { writeTrainedGraph } from './export.js';
import { generateAnswers } from './generate-eval.js';
import { captionMetrics } from '../eval/metrics/caption.js';
import { vqaMetrics } from '../eval/metrics/vqa.js';
import { onePerImage, referencesOf } from '../eval/datasets.js';
import { resolveShapes } from '../widths.js';
import { ALIGN_TARGET, AlignmentTeacher, DIFFUSION, MLM, MRM, diffusionFeeds, diffusionSetup, evalRng, leftAlign, maskPatches, maskTokens } from './objectives.js';
import { tokenizeParams } from '../../nodes/text.js';
import { STAGE1_BATCH_INPUTS, buildBlip2Stage1, stage1Feeds } from './blip2-stage1.js';
import { tokenizerFor } from '../host-steps/text.js';
import { type EvalMetrics, accumulateLm, exactMatch, retrievalAtOne } from './metrics.js';

export interface TrainOptions {
  graph: GraphDocument;
  /** Folder that relative paths in the graph resolve against. */
  baseDir: string;
  recipe: string;
  steps: number;
  batchSize?: number;
  learningRate?: number;
  optimizer?: 'adamw' | 'sgd';
  /** Adapter added to the LLM decoder (its base weights then stay frozen). */
  adapter?: { method: AdapterSpec['method']; config: Record<string, unknown> };
  /** `shapes` or a dataset file. */
  dataset: string;
  /**
   * nextgpt-align: the text-to-image graph whose conditioning (its text encoder's states for the same request) the
   * output projector learns to reproduce; `baseDir` resolves its weight paths.
   */
  teacher?: { graph: GraphDocument; baseDir: string };
  datasetSize?: number;
  /** Scene options of the built-in `shapes` dataset (e.g. single shapes only, a vocabulary subset). */
  shapes?: ShapesSceneOptions;
  seed?: number;
  /** Evaluate every N steps (0: only at the end when evalAtEnd). */
  evalEvery?: number;
  evalAtEnd?: boolean;
  /** Held-out samples per evaluation (default 32). */
  evalSamples?: number;
  /**
   * VQA recipes: held-out samples answered by greedy generation at each evaluation, scored by exact match
   * (metric `exact_match`; default 8, 0 = off).
   */
  evalGenerate?: number;
  /** Write a checkpoint every N steps (default: only at the end, when `out` or `checkpointDir` is set). */
  checkpointEvery?: number;
  /** `--out DIR`: graph.json + weights/ + checkpoints/. */
  out?: string;
  /** Where checkpoints go when there is no `out` (the app's data folder). */
  checkpointDir?: string;
  /** A checkpoint file or a folder holding checkpoints. */
  resume?: string;
  /** Compute frozen upstream nodes once per sample (default true). */
  prefixCache?: boolean;
  /** Train on one fixed batch every step (tests: the loss must go down). */
  fixedBatch?: boolean;
  /**
   * Gradient accumulation: each step sums the gradients of N micro-batches of `batchSize` (weighted by their counted
   * tokens, or rows) before one update, so it equals one batch of N·batchSize (default 1).
   */
  accumulate?: number;
  warmupRatio?: number;
  maxGradNorm?: number;
  weightDecay?: number;
  executor?: Executor;
  catalog?: Catalog;
  control?: TrainControl;
  onEvent?: (e: TrainerEvent) => void;
}

export type TrainerEvent =
  | { type: 'started'; totalSteps: number; startStep: number; trainable: number; trainableTensors: number; nodes: { train: string[]; prefix: string[] } }
  | { type: 'step'; step: number; totalSteps: number; loss: number; lr: number; gradNorm: number; applied: boolean; samplesPerSec: number; etaSeconds: number; elapsedMs: number }
  | { type: 'eval'; step: number; metrics: EvalMetrics }
  | { type: 'checkpoint'; step: number; path: string }
  | { type: 'paused'; step: number }
  | { type: 'resumed'; step: number }
  | { type: 'stopped'; step: number }
  | { type: 'done'; step: number; out?: string; checkpoint?: string };

/** Pause / resume / stop, checked between steps. */
export class TrainControl {
  private paused = false;
  private stopped = false;
  private wake: (() => void) | undefined;

  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.wake?.();
  }
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }
  get isStopped(): boolean {
    return this.stopped;
  }
  get isPaused(): boolean {
    return this.paused;
  }
  /** Resolves when not paused (or stopped). */
  async waitWhilePaused(): Promise<void> {
    while (this.paused && !this.stopped) await new Promise<void>((r) => (this.wake = r));
  }
}

export interface TrainResult {
  losses: number[];
  steps: number;
  metrics?: EvalMetrics;
  out?: string;
  checkpoint?: string;
  /** Final trainable values by training-model name. */
  params: Map<string, Tensor>;
  built: BuiltTraining;
  plan: TrainPlan;
  samplesPerSec: number;
}

/** Applies the recipe's freezing (and the adapter) to a copy of the document. */
export function prepareDocument(graph: GraphDocument, recipe: Recipe, catalog: Catalog, adapter?: TrainOptions['adapter']): GraphDocument {
  const doc = structuredClone(graph);
  let decided = 0;
  let training = 0;
  for (const node of doc.nodes) {
    const def = catalog.lookup(node.type);
    if (!def?.build) continue;
    const trains = recipe.trains(node, def.info.family);
    if (trains !== undefined) {
      node.frozen = !trains;
      decided++;
      if (trains) training++;
    }
  }
  if (decided > 0 && training === 0 && !adapter) {
    throw new TrainError(`recipe '${recipe.name}' trains ${recipe.trainsWhat}, and graph '${graph.name}' has none`);
  }
  if (adapter) {
    const targets = doc.nodes.filter(isGeneratingDecoder);
    if (targets.length === 0) throw new TrainError(`--adapter ${adapter.method}: the graph has no decoder (llm.decoder or an imported one that generates) to attach it to`);
    for (const n of targets) {
      n.frozen = true;
      n.adapters = [...n.adapters, { id: adapter.method, method: adapter.method, config: adapter.config }];
    }
    // The shared word embedding stays with the frozen base.
    for (const n of doc.nodes) if (n.type === 'llm.embed_tokens') n.frozen = true;
  }
  return doc;
}

function hyperFor(recipe: Recipe, o: TrainOptions): Hyper {
  const h = { ...recipe.hyper, ...(o.adapter ? recipe.adapterHyper : {}) };
  return {
    learningRate: o.learningRate ?? h.learningRate,
    warmupRatio: o.warmupRatio ?? h.warmupRatio,
    weightDecay: o.weightDecay ?? h.weightDecay,
    maxGradNorm: o.maxGradNorm ?? h.maxGradNorm,
    batchSize: o.batchSize ?? h.batchSize,
  };
}

export class Trainer {
  private constructor(
    readonly o: TrainOptions,
    readonly recipe: Recipe,
    readonly hyper: Hyper,
    readonly plan: TrainPlan,
    readonly built: BuiltTraining,
    readonly data: DatasetSplits,
    private readonly samples: SampleBuilder,
    private readonly prefixSession: ort.InferenceSession | null,
    private readonly executor: Executor,
    private readonly ownsExecutor: boolean,
    private readonly teacher: AlignmentTeacher | null,
  ) {}

  private readonly prefixCache = new Map<string, Map<string, Tensor>>();

  static async create(o: TrainOptions): Promise<Trainer> {
    if (!Number.isInteger(o.steps) || o.steps <= 0) throw new TrainError(`steps must be a positive integer, got ${o.steps}`);
    const accumulate = o.accumulate ?? 1;
    if (!Number.isInteger(accumulate) || accumulate <= 0) throw new TrainError(`accumulate must be a positive integer, got ${o.accumulate}`);
    const catalog = o.catalog ?? defaultCatalog;
    const recipe = recipeByName(o.recipe);
    const hyper = hyperFor(recipe, o);
    const doc = prepareDocument(o.graph, recipe, catalog, o.adapter);
    const lossNodes = lossPorts(doc, catalog, recipe.objective).map((p) => p.node);
    // BLIP-2 stage 1 always keeps its frozen ViT as a cached prefix (its model holds the Q-Former passes only).
    const stage1 = recipe.objective === 'blip2-stage1';
    const plan = planTraining(doc, catalog, { lossNodes, prefixCache: stage1 ? true : o.prefixCache });
    const executor = o.executor ?? new Executor({ catalog });
    const optimizer: OptimizerConfig =
      (o.optimizer ?? 'adamw') === 'adamw'
        ? ({ ...DEFAULT_ADAMW, weightDecay: hyper.weightDecay } satisfies AdamWConfig)
        : { kind: 'sgd', momentum: 0.9, dampening: 0, nesterov: false, weightDecay: hyper.weightDecay };
    const built = stage1
      ? await buildBlip2Stage1({ executor, catalog, baseDir: o.baseDir, plan, optimizer, maxGradNorm: hyper.maxGradNorm, weightDecay: hyper.weightDecay, accumulate: accumulate > 1 })
      : await buildTraining({
          executor, catalog, baseDir: o.baseDir, plan, objective: recipe.objective, optimizer, maxGradNorm: hyper.maxGradNorm, weightDecay: hyper.weightDecay,
          accumulate: accumulate > 1,
        });
    const data = loadSplits(o.dataset, { size: o.datasetSize, seed: o.seed ?? 0, shapes: o.shapes });
    const diffusion = recipe.objective === 'diffusion' ? diffusionSetup(doc) : undefined;
    const samples = new SampleBuilder({
      doc, catalog, baseDir: o.baseDir, dataPorts: plan.dataPorts, task: recipe.task, labelInput: built.labelInput,
      targetImage: diffusion && { size: diffusion.size, channels: diffusion.channels },
    });
    const prefixSession = built.prefix ? await createSession(built.prefix.model) : null;
    let teacher: AlignmentTeacher | null = null;
    if (recipe.objective === 'align') {
      if (!o.teacher) {
        throw new TrainError(
          `recipe '${recipe.name}' needs a teacher: the text-to-image graph whose text encoder states the output projector learns to reproduce (--teacher FILE)`,
        );
      }
      teacher = new AlignmentTeacher(o.teacher, executor);
      const student = diffusionSetup(doc).conditioning;
      const dims = resolveShapes(doc, catalog).get(student.node)?.outputs[student.port] ?? [];
      const first = data.train[0];
      if (first?.caption) await teacher.checkMatches({ node: student.node, dims }, generationRequest(first.caption, first.id));
    }
    return new Trainer(o, recipe, hyper, plan, built, data, samples, prefixSession, executor, !o.executor, teacher);
  }

  /** Everything the training model reads for one sample (data values and cached prefix outputs). */
  private async sampleValues(sample: Sample): Promise<Map<string, Tensor>> {
    const hit = this.prefixCache.get(sample.id);
    if (hit) return hit;
    const prepared = await this.samples.prepare(sample);
    if (!this.prefixSession || !this.built.prefix) return prepared.values;
    const feeds: Record<string, Tensor> = {};
    for (const name of this.prefixSession.inputNames) {
      const v = prepared.values.get(name);
      if (!v) throw new TrainError(`frozen prefix input '${name}' has no data for sample '${sample.id}'`);
      feeds[name] = v;
    }
    const out = await runSession(this.prefixSession, feeds, [...this.built.prefix.outputs.keys()]);
    const values = new Map(prepared.values);
    for (const [fused, name] of this.built.prefix.outputs) values.set(name, out[fused]);
    this.prefixCache.set(sample.id, values);
    return values;
  }

  /**
   * Collated feeds of the training (or eval) model for these samples. Objectives that draw per-batch values (noise,
   * timesteps, masks) take them from `rng` (default: a fixed evaluation stream).
   */
  async batchFeeds(batch: Sample[], rng: Rng = evalRng(this.o.seed ?? 0)): Promise<Record<string, Tensor>> {
    const rows = await Promise.all(batch.map((s) => this.sampleValues(s)));
    const feeds: Record<string, Tensor> = {};
    const diffusion = this.recipe.objective === 'diffusion' ? diffusionSetup(this.plan.doc) : undefined;
    if (diffusion) {
      const x0 = collate(DIFFUSION.x0, rows.map((r) => r.get(DIFFUSION.x0)!), 0);
      Object.assign(feeds, diffusionFeeds(diffusion, x0, rng));
    }
    if (this.teacher) {
      const teacher = this.teacher;
      const targets = await Promise.all(batch.map((s) => {
        if (!s.caption) throw new TrainError(`sample '${s.id}' has no caption (the recipe asks for each caption's image)`);
        return teacher.target(generationRequest(s.caption, s.id));
      }));
      feeds[ALIGN_TARGET] = collate(ALIGN_TARGET, targets, 0);
    }
    // The output projector reads the last positions (signal tokens), so every sequence it depends on is right-aligned:
    // embeddings and the decoder's attention mask alike (positions follow the mask).
    const readsLastPositions = diffusion !== undefined || this.teacher !== null;
    for (const input of this.built.dataInputs) {
      // Drawn per batch below (masking targets), not per sample.
      if (feeds[input.name] || input.name === MLM.labels || input.name === MRM.target || input.name === MRM.mask || STAGE1_BATCH_INPUTS.has(input.name)) continue;
      let parts = rows.map((r, i) => {
        const v = r.get(input.name);
        if (!v) throw new TrainError(`training input '${input.name}' has no data for sample '${batch[i].id}'`);
        return v;
      });
      const pad = padValueOf(input.name, this.samples.padId);
      if (readsLastPositions) parts = leftAlign(parts, pad, `training input '${input.name}'`);
      feeds[input.name] = collate(input.name, parts, pad);
    }
    if (this.recipe.objective === 'blip2-stage1') {
      const captions = batch.map((s) => {
        if (!s.caption) throw new TrainError(`sample '${s.id}' has no caption (blip2-stage1 trains on image-text pairs)`);
        return s.caption;
      });
      Object.assign(feeds, stage1Feeds(captions, tokenizerFor('builtin', this.o.baseDir), rng));
    }
    const masking = this.built.masking;
    if (masking?.kind === 'mlm') {
      const node = this.plan.doc.nodes.find((n) => n.id === masking.tokenizeNode)!;
      const tok = tokenizerFor(tokenizeParams.parse(node.params).tokenizer, this.o.baseDir);
      const ids = feeds[masking.idsInput];
      const mask = masking.maskInput ? feeds[masking.maskInput] : { ...ids, data: new BigInt64Array(ids.data.length).fill(1n) };
      const masked = maskTokens(ids, mask, tok, rng, `tokenizer '${masking.tokenizeNode}'`);
      feeds[masking.idsInput] = masked.ids;
      feeds[MLM.labels] = masked.labels;
    } else if (masking?.kind === 'mrm') {
      const masked = maskPatches(feeds[masking.pixelInput], masking.patch, rng);
      feeds[masking.pixelInput] = masked.pixels;
      feeds[MRM.target] = masked.target;
      feeds[MRM.mask] = masked.mask;
    }
    for (const past of this.built.pastInputs) feeds[past.name] = emptyPast(past, batch.length);
    return feeds;
  }

  /** Held-out metrics with the current trainables (loss, token accuracy or retrieval R@1). */
  async evaluate(params: Map<string, Tensor>, session: ort.InferenceSession): Promise<EvalMetrics> {
    const pool = this.data.eval.length > 0 ? this.data.eval : this.data.train;
    const n = Math.min(pool.length, this.o.evalSamples ?? 32);
    const bs = this.hyper.batchSize;
    let lm = { loss: 0, tokens: 0, correct: 0 };
    let itcLoss = 0;
    let itcBatches = 0;
    let hits = 0;
    let count = 0;
    for (let at = 0; at < n; at += bs) {
      const batch = pool.slice(at, Math.min(n, at + bs));
      // ITM needs another pair in the batch to draw a negative from: a trailing single sample is left out.
      if (batch.length < 2 && this.recipe.objective === 'blip2-stage1') continue;
      const feeds = await this.batchFeeds(batch);
      for (const t of this.built.trainables) feeds[t.name] = params.get(t.name)!;
      const out = await runSession(session, feeds);
      const loss = tensorToNumbers(out['train.loss_value'])[0];
      if (this.built.metricOutputs.tokens) {
        lm = accumulateLm(lm, loss, tensorToNumbers(out['train.tokens'])[0], tensorToNumbers(out['train.correct'])[0]);
      } else {
        itcLoss += loss;
        itcBatches++;
        if (this.built.metricOutputs.logits) {
          const r = retrievalAtOne(out['train.itc_logits']);
          hits += r.hits;
          count += r.count;
        }
      }
    }
    if (this.built.metricOutputs.tokens) {
      const metrics: EvalMetrics = { eval_loss: lm.tokens > 0 ? lm.loss / lm.tokens : 0, token_accuracy: lm.tokens > 0 ? lm.correct / lm.tokens : 0 };
      const generate = Math.min(pool.length, this.o.evalGenerate ?? 8);
      const task = this.recipe.task;
      if (this.recipe.objective === 'lm' && (task === 'vqa' || task === 'caption') && generate > 0) {
        // The task's paper metric on greedy answers: VQA accuracy (and exact match), or CIDEr-D for captions.
        const picked = task === 'caption' ? onePerImage(pool).slice(0, generate) : pool.slice(0, generate);
        const samples = await Promise.all(picked.map(async (sample) => ({ sample, ...(await this.samples.prepare(sample)) })));
        const answers = await generateAnswers({
          executor: this.executor, graph: this.o.graph, doc: this.plan.doc, baseDir: this.o.baseDir, built: this.built, params, samples,
          maxNewTokens: task === 'caption' ? 32 : 16,
        });
        if (task === 'vqa') {
          metrics.exact_match = answers.filter((a) => exactMatch(a.predicted, a.target)).length / Math.max(1, answers.length);
          metrics.vqa_accuracy = vqaMetrics(answers.map((a) => ({ prediction: a.predicted, answers: Array<string>(10).fill(a.target) })), 'normalise').accuracy;
        } else if (answers.length > 1) {
          metrics.cider = captionMetrics(answers.map((a, i) => ({ prediction: a.predicted, references: referencesOf(picked[i], pool) }))).metrics.cider;
        }
      }
      return metrics;
    }
    if (!this.built.metricOutputs.logits) return { eval_loss: itcBatches > 0 ? itcLoss / itcBatches : 0 };
    return { eval_loss: itcBatches > 0 ? itcLoss / itcBatches : 0, retrieval_r1: count > 0 ? hits / count : 0 };
  }

  async run(): Promise<TrainResult> {
    const o = this.o;
    const seed = o.seed ?? 0;
    const totalSteps = o.steps;
    const warmupSteps = warmupStepsFor(totalSteps, this.hyper.warmupRatio);
    const sampler = new EpochSampler(this.data.train.length, { seed, shuffle: !o.fixedBatch });
    const rng = new Rng(seed).fork('trainer');
    let resumed: Checkpoint | undefined;
    if (o.resume) {
      resumed = loadCheckpoint(o.resume);
      this.checkCompatible(resumed.meta);
      sampler.restore(resumed.meta.sampler);
      rng.restore(resumed.meta.rng);
    }
    const params = new Map(this.built.initial);
    if (resumed) for (const [k, v] of resumed.params) params.set(k, v);
    const accumulation = this.built.accumulation;
    const runner = await TrainRunner.create(accumulation?.apply ?? this.built.step, this.optimizerConfig(), params, {
      state: resumed ? this.checkState(resumed) : undefined,
      step: resumed?.meta.step ?? 0,
    });
    const accumulator = accumulation ? await GradAccumulator.create(accumulation.grad) : undefined;
    const micro = accumulation ? (o.accumulate ?? 1) : 1;
    // Created on the first evaluation: runs without evaluation never pay for it.
    let evalSession: ort.InferenceSession | undefined;
    const evalWith = async (p: Map<string, Tensor>) => this.evaluate(p, (evalSession ??= await createSession(this.built.evalModel)));
    const losses = [...(resumed?.meta.losses ?? [])];
    const trainableCount = this.built.trainables.reduce((n, t) => n + (params.get(t.name)?.data.length ?? 0), 0);
    o.onEvent?.({
      type: 'started', totalSteps, startStep: runner.step, trainable: trainableCount, trainableTensors: this.built.trainables.length,
      nodes: { train: this.plan.trainNodes, prefix: this.plan.prefixNodes },
    });
    const checkpointDir = o.out ? join(o.out, 'checkpoints') : o.checkpointDir;
    let lastCheckpoint: string | undefined;
    let elapsedMs = resumed?.meta.elapsedMs ?? 0;
    let samplesSeen = 0;
    let trainMs = 0;
    const fixed = o.fixedBatch ? sampler.epochOrder(0).slice(0, this.hyper.batchSize * micro) : undefined;
    const meta = (): CheckpointMeta => ({
      format: 'composer.checkpoint', version: 1, step: runner.step, totalSteps, recipe: this.recipe.name, graphName: o.graph.name,
      dataset: this.data.name, seed,
      hyper: {
        learningRate: this.hyper.learningRate, warmupSteps, weightDecay: this.hyper.weightDecay, maxGradNorm: this.hyper.maxGradNorm,
        batchSize: this.hyper.batchSize, optimizer: o.optimizer ?? 'adamw',
      },
      adapter: o.adapter?.method ?? null, rng: rng.state(), sampler: sampler.state(), trainables: this.built.trainables.map((t) => t.name),
      losses, elapsedMs,
    });
    const save = () => {
      if (!checkpointDir) return undefined;
      mkdirSync(checkpointDir, { recursive: true });
      lastCheckpoint = saveCheckpoint(checkpointDir, { meta: meta(), params: runner.params, state: runner.state });
      o.onEvent?.({ type: 'checkpoint', step: runner.step, path: lastCheckpoint });
      return lastCheckpoint;
    };
    let metrics: EvalMetrics | undefined;
    let stopped = false;
    try {
      while (runner.step < totalSteps) {
        // ORT runs block this thread; yield once per step so pause/resume/stop messages from the host get in.
        if (o.control) await new Promise<void>((resolve) => setImmediate(resolve));
        if (o.control?.isPaused) {
          o.onEvent?.({ type: 'paused', step: runner.step });
          await o.control.waitWhilePaused();
          if (!o.control.isStopped) o.onEvent?.({ type: 'resumed', step: runner.step });
        }
        if (o.control?.isStopped) {
          stopped = true;
          break;
        }
        const t0 = performance.now();
        const indices = fixed ?? sampler.next(this.hyper.batchSize * micro).indices;
        const batch = indices.map((i) => this.data.train[i]);
        const t = runner.step + 1;
        const lr = learningRateAt(t, { peakLr: this.hyper.learningRate, totalSteps, warmupSteps });
        let res: StepResult;
        if (accumulator) {
          // Micro-batches of batchSize; token losses are weighted by their counted tokens, others by rows.
          const parts: MicroBatch[] = [];
          for (let at = 0; at < batch.length; at += this.hyper.batchSize) {
            const rows = batch.slice(at, at + this.hyper.batchSize);
            parts.push({ feeds: await this.batchFeeds(rows, rng), weight: rows.length });
          }
          const acc = await accumulator.accumulate(runner.params, parts, this.built.metricOutputs.tokens);
          res = { ...(await runner.run(acc.feeds, lr)), loss: acc.loss };
        } else {
          res = await runner.run(await this.batchFeeds(batch, rng), lr);
        }
        const ms = performance.now() - t0;
        elapsedMs += ms;
        trainMs += ms;
        samplesSeen += batch.length;
        losses.push(res.loss);
        const samplesPerSec = samplesSeen / (trainMs / 1000);
        o.onEvent?.({
          type: 'step', step: res.step, totalSteps, loss: res.loss, lr, gradNorm: res.gradNorm, applied: res.applied, samplesPerSec,
          etaSeconds: ((totalSteps - res.step) * this.hyper.batchSize * micro) / samplesPerSec, elapsedMs,
        });
        const evalEvery = o.evalEvery ?? 0;
        if (evalEvery > 0 && res.step % evalEvery === 0) {
          metrics = await evalWith(runner.params);
          o.onEvent?.({ type: 'eval', step: res.step, metrics });
        }
        if (o.checkpointEvery && res.step % o.checkpointEvery === 0 && res.step < totalSteps) save();
      }
      if (!stopped && o.evalAtEnd && (o.evalEvery ?? 0) === 0) {
        metrics = await evalWith(runner.params);
        o.onEvent?.({ type: 'eval', step: runner.step, metrics });
      }
      save();
      if (o.out) {
        await writeTrainedGraph({ out: o.out, graph: o.graph, baseDir: o.baseDir, built: this.built, params: runner.params, doc: this.plan.doc });
      }
      o.onEvent?.(stopped ? { type: 'stopped', step: runner.step } : { type: 'done', step: runner.step, out: o.out, checkpoint: lastCheckpoint });
      return {
        losses, steps: runner.step, metrics, out: o.out, checkpoint: lastCheckpoint, params: new Map(runner.params), built: this.built,
        plan: this.plan, samplesPerSec: trainMs > 0 ? samplesSeen / (trainMs / 1000) : 0,
      };
    } finally {
      await runner.release();
      await accumulator?.release();
      await evalSession?.release();
    }
  }

  private optimizerConfig(): OptimizerConfig {
    return (this.o.optimizer ?? 'adamw') === 'adamw'
      ? { ...DEFAULT_ADAMW, weightDecay: this.hyper.weightDecay }
      : { kind: 'sgd', momentum: 0.9, dampening: 0, nesterov: false, weightDecay: this.hyper.weightDecay };
  }

  private checkCompatible(meta: CheckpointMeta): void {
    if (meta.recipe !== this.recipe.name) {
      throw new TrainError(`checkpoint was written by recipe '${meta.recipe}', this run uses '${this.recipe.name}'`);
    }
    const ours = this.built.trainables.map((t) => t.name);
    const missing = ours.filter((n) => !meta.trainables.includes(n));
    const extra = meta.trainables.filter((n) => !ours.includes(n));
    if (missing.length || extra.length) {
      throw new TrainError(
        `checkpoint does not match this graph: ${missing.length ? `missing ${missing.slice(0, 3).join(', ')}` : ''}` +
          `${extra.length ? ` unexpected ${extra.slice(0, 3).join(', ')}` : ''}`,
      );
    }
  }

  private checkState(ck: Checkpoint): Map<string, Tensor> {
    for (const t of this.built.trainables) {
      const have = ck.params.get(t.name)!;
      const want = this.built.initial.get(t.name)!;
      if (have.dims.join(',') !== want.dims.join(',')) {
        throw new TrainError(`checkpoint tensor '${t.name}' has shape [${have.dims}], the graph needs [${want.dims}]`);
      }
    }
    for (const io of this.built.step.params) {
      for (const s of io.state) if (!ck.state.has(s.input)) throw new TrainError(`checkpoint has no optimiser state '${s.input}'`);
    }
    return ck.state;
  }

  async dispose(): Promise<void> {
    await this.prefixSession?.release();
    if (this.ownsExecutor) await this.executor.dispose();
  }

  /** Node type of a node (for reports). */
  typeOf(id: string): string {
    return defOf(this.plan.doc, this.o.catalog ?? defaultCatalog, id).info.type;
  }
}

/** One call: build, run, dispose. */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const trainer = await Trainer.create(o);
  try {
    return await trainer.run();
  } finally {
    await trainer.dispose();
  }
}
