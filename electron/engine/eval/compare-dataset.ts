// Compare on a dataset: the graph as it is and one variant per candidate type at one node, each scored on the same
// evaluation set with the task's metrics (runner.ts), side by side with its parameters, latency per sample and
// training time. One executor serves every variant, so the upstream of the swapped node (the frozen vision encoder)
// is computed once per sample and then comes from the cache; each variant's latency still counts that upstream at
// the cost it had. With `train`, every new variant first trains with the recipe (what the recipe trains: for
// blip2-stage2 the projector) for the same number of steps, so a fresh projector is not compared with a trained one;
// `train.reinit` re-initialises the original's node too and trains it the same way.

import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Candidate, CompareError, parameterCounts, variantDocument } from '../compare.js';
import { type GraphDocument, parseGraphDocument } from '../document.js';
import { Executor } from '../executor.js';
import { hashKey } from '../keys.js';
import { OUT_GRAPH } from '../trainer/export.js';
import { TrainControl, train } from '../trainer/trainer.js';
import { type EvalItem, type EvalSet, SHAPES_SCENES } from './datasets.js';
import { type EvalProgress, type EvalResult, type EvalSampleRecord, evaluateGraph } from './runner.js';

export interface DatasetTraining {
  steps: number;
  recipe: string;
  /** `shapes` or a dataset file (its train split; the trainer holds 10% out). */
  dataset: string;
  /** Re-initialise the original's node and train it too (default: the original is evaluated as it is). */
  reinit?: boolean;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
}

export interface DatasetCompareOptions {
  baseDir: string;
  node: string;
  with: Candidate[];
  set: EvalSet;
  train?: DatasetTraining;
  /** Caption task: the user text (default: the graph's own prompt). */
  prompt?: string;
  /** Where trained variants are written (default: a folder under the OS temp dir). */
  workDir?: string;
  executor?: Executor;
  signal?: AbortSignal;
  onEvent?: (e: DatasetCompareEvent) => void;
}

export type DatasetCompareEvent =
  | { type: 'variant-start'; variant: number; nodeType: string }
  | { type: 'train-step'; variant: number; step: number; totalSteps: number; loss: number }
  | { type: 'eval-progress'; variant: number; progress: EvalProgress }
  | { type: 'sample'; variant: number; record: EvalSampleRecord; item: EvalItem }
  | { type: 'variant'; result: DatasetVariantResult };

export interface DatasetVariantResult {
  variant: number;
  nodeType: string;
  metrics: Record<string, number>;
  paperMetric: string;
  totalParams: number;
  trainableParams: number;
  /** Parameters of the compared node alone. */
  nodeParams: number;
  /** Mean milliseconds per sample of the whole pipeline. */
  latencyMs: number;
  /** Training before evaluation (absent: evaluated as given). */
  training?: { steps: number; recipe: string; ms: number; finalLoss: number; trainable: number };
  /** The trained graph folder, when the variant trained. */
  trainedGraph?: string;
  samples: EvalSampleRecord[];
  notes: string[];
}

export interface DatasetCompareResult {
  node: string;
  task: EvalSet['task'];
  dataset: string;
  variants: DatasetVariantResult[];
  /** Nodes computed in at least one variant run, with how many times (upstream shared by all: once per sample). */
  computeCounts: Record<string, number>;
  totalMs: number;
}

/** The graph with the compared node's weights dropped: the same type and params, freshly initialised. */
function reinitialised(doc: GraphDocument, nodeId: string, executor: Executor): GraphDocument {
  const old = doc.nodes.find((n) => n.id === nodeId);
  if (!old) throw new CompareError(`there is no node '${nodeId}' in the graph`);
  return variantDocument(doc, nodeId, { type: old.type, params: old.params }, executor).doc;
}

export async function compareOnDataset(doc: GraphDocument, o: DatasetCompareOptions): Promise<DatasetCompareResult> {
  const started = performance.now();
  if (o.with.length === 0) throw new CompareError('give at least one candidate type to compare with');
  const executor = o.executor ?? new Executor();
  const workDir = o.workDir ?? join(tmpdir(), 'composer-compare', hashKey({ doc: doc.name, at: Date.now(), pid: process.pid }));
  try {
    const original = doc.nodes.find((n) => n.id === o.node);
    if (!original) throw new CompareError(`there is no node '${o.node}' in the graph`);
    const variants = [
      {
        doc: o.train?.reinit ? reinitialised(doc, o.node, executor) : doc,
        nodeType: original.type,
        notes: o.train?.reinit ? [`node '${o.node}' starts from fresh weights (the graph seed), like the other variants`] : [],
        trains: !!o.train?.reinit,
      },
      ...o.with.map((c) => ({ ...variantDocument(doc, o.node, c, executor), trains: !!o.train })),
    ];
    const nodeMs = new Map<string, number>();
    const computeCounts: Record<string, number> = {};
    const results: DatasetVariantResult[] = [];
    for (const [v, variant] of variants.entries()) {
      o.onEvent?.({ type: 'variant-start', variant: v, nodeType: variant.nodeType });
      let evalDoc = variant.doc;
      let evalBase = o.baseDir;
      let training: DatasetVariantResult['training'];
      let trainedGraph: string | undefined;
      const notes = variant.notes.filter((n) => !(variant.trains && n.includes('untrained')));
      if (variant.trains && o.train) {
        const out = join(workDir, `variant-${v}`);
        mkdirSync(out, { recursive: true });
        const t0 = performance.now();
        // Cancelling stops the training between steps; the evaluation after it then stops at once.
        const control = new TrainControl();
        o.signal?.addEventListener('abort', () => control.stop(), { once: true });
        const res = await train({
          graph: variant.doc, baseDir: o.baseDir, recipe: o.train.recipe, steps: o.train.steps, dataset: o.train.dataset,
          ...(o.train.dataset === 'shapes' ? { shapes: SHAPES_SCENES } : {}),
          batchSize: o.train.batchSize, learningRate: o.train.learningRate, seed: o.train.seed ?? 0, out, executor, control,
          onEvent: (e) => {
            if (e.type === 'step') o.onEvent?.({ type: 'train-step', variant: v, step: e.step, totalSteps: e.totalSteps, loss: e.loss });
          },
        });
        const trainable = res.built.trainables.reduce((n, t) => n + (res.params.get(t.name)?.data.length ?? 0), 0);
        training = { steps: res.steps, recipe: o.train.recipe, ms: performance.now() - t0, finalLoss: res.losses.at(-1) ?? NaN, trainable };
        trainedGraph = out;
        evalDoc = parseGraphDocument(readFileSync(join(out, OUT_GRAPH), 'utf8'), join(out, OUT_GRAPH));
        evalBase = out;
        notes.push(`node '${o.node}' trained ${res.steps} steps with recipe '${o.train.recipe}' (${trainable.toLocaleString('en-US')} parameters) before evaluation`);
      } else if (o.train && v === 0) {
        notes.push(`evaluated with its weights as given (untrained here; --reinit trains it from fresh weights like the others)`);
      }
      const counts = await parameterCounts(executor, evalDoc, evalBase);
      const result: EvalResult = await evaluateGraph(evalDoc, o.set, {
        baseDir: evalBase, executor, prompt: o.prompt, nodeMs, signal: o.signal,
        onProgress: (progress) => o.onEvent?.({ type: 'eval-progress', variant: v, progress }),
        onSample: (record, item) => o.onEvent?.({ type: 'sample', variant: v, record, item }),
        onRun: (computed) => {
          for (const id of computed) computeCounts[id] = (computeCounts[id] ?? 0) + 1;
        },
      });
      results.push({
        variant: v,
        nodeType: variant.nodeType,
        metrics: result.metrics,
        paperMetric: result.paperMetric,
        totalParams: counts.total,
        trainableParams: training?.trainable ?? counts.trainable,
        nodeParams: counts.byNode[o.node] ?? 0,
        latencyMs: result.latencyMs,
        ...(training ? { training } : {}),
        ...(trainedGraph ? { trainedGraph } : {}),
        samples: result.samples,
        notes,
      });
      o.onEvent?.({ type: 'variant', result: results[results.length - 1] });
    }
    return { node: o.node, task: o.set.task, dataset: o.set.name, variants: results, computeCounts, totalMs: performance.now() - started };
  } finally {
    if (!o.executor) await executor.dispose();
  }
}
