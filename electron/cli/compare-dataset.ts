// vlmc compare GRAPH --node ID --with TYPE[,TYPE...] --dataset shapes|PATH [--split S] [--task T] [--limit N]
//              [--train-steps N --recipe R [--reinit] [--batch B] [--lr X]] [--prompt TEXT] [--out DIR] [--json]
// The dataset mode of `vlmc compare` (electron/cli/compare.ts hands over when --dataset is given).

import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { GraphDocument } from '../engine/document.js';
import { compareOnDataset } from '../engine/eval/compare-dataset.js';
import { RECIPE_NAMES } from '../engine/trainer/recipes.js';
import { UsageError } from './args.js';
import { defaultOutDir, evalFlags, evalSetFor, metricTable, progressReporter, writeEvalOutputs } from './eval.js';

export const datasetCompareFlags = {
  dataset: evalFlags.dataset.optional(),
  split: evalFlags.split,
  task: evalFlags.task,
  limit: evalFlags.limit,
  questions: evalFlags.questions,
  images: evalFlags.images,
  seed: evalFlags.seed,
  'train-steps': z.coerce.number().int().positive().optional(),
  recipe: z.string().min(1).optional(),
  reinit: z.boolean().default(false),
  batch: z.coerce.number().int().positive().optional(),
  lr: z.coerce.number().positive().optional(),
};

const datasetCompareSchema = z.object(datasetCompareFlags);
type Flags = Omit<z.infer<typeof datasetCompareSchema>, 'dataset'> & {
  dataset: string;
  node: string;
  prompt?: string;
  out?: string;
  json: boolean;
};

const fmtCount = (n: number) => n.toLocaleString('en-US');

export async function compareOnDatasetCommand(
  o: Flags,
  g: { doc: GraphDocument; baseDir: string; candidates: string[]; graphArg: string },
  out: (line: string) => void,
): Promise<number> {
  const training = o['train-steps'] !== undefined;
  if (training && !o.recipe) throw new UsageError(`--train-steps trains each variant's new part: name the recipe, e.g. --recipe blip2-stage2 (one of ${RECIPE_NAMES.join(', ')})`);
  if (!training && (o.recipe || o.reinit)) throw new UsageError(`--${o.recipe ? 'recipe' : 'reinit'} goes with --train-steps N`);
  if (o.recipe && !(RECIPE_NAMES as readonly string[]).includes(o.recipe)) throw new UsageError(`--recipe: unknown recipe '${o.recipe}' (one of ${RECIPE_NAMES.join(', ')})`);
  // Trained variants are scored on held-out data: the eval split unless another is asked for.
  const set = evalSetFor({ ...o, split: o.split ?? (training && o.dataset !== 'shapes' ? 'eval' : undefined) }, g.doc);
  const dir = resolve(o.out ?? defaultOutDir(`${g.doc.name}-compare`, set.task));
  const progress = progressReporter(o.json, out, 'variant');
  const res = await compareOnDataset(g.doc, {
    baseDir: g.baseDir,
    node: o.node,
    with: g.candidates,
    set,
    prompt: o.prompt,
    workDir: join(dir, 'trained'),
    ...(training
      ? { train: { steps: o['train-steps']!, recipe: o.recipe!, dataset: o.dataset === 'shapes' ? 'shapes' : resolve(o.dataset), reinit: o.reinit, batchSize: o.batch, learningRate: o.lr, seed: o.seed } }
      : {}),
    onEvent: (e) => {
      if (e.type === 'variant-start' && !o.json) process.stderr.write(`variant ${e.variant} (${e.nodeType})\n`);
      if (e.type === 'train-step' && (e.step % 50 === 0 || e.step === e.totalSteps)) {
        if (o.json) out(JSON.stringify({ type: 'train-step', variant: e.variant, step: e.step, total: e.totalSteps, loss: e.loss }));
        else process.stderr.write(`  train ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)}\n`);
      }
      if (e.type === 'eval-progress') progress({ ...e.progress, id: `${e.variant}:${e.progress.id}` });
    },
  });
  for (const v of res.variants) {
    writeEvalOutputs(join(dir, `variant-${v.variant}`), { task: res.task, dataset: res.dataset, metrics: v.metrics, paperMetric: v.paperMetric, samples: v.samples, latencyMs: v.latencyMs, wallMs: 0 }, {
      variant: v.variant, node_type: v.nodeType, total_params: v.totalParams, trainable_params: v.trainableParams, training: v.training ?? null,
    });
  }
  if (o.json) {
    for (const v of res.variants) {
      out(JSON.stringify({
        type: 'variant', variant: v.variant, nodeType: v.nodeType, metrics: v.metrics, paperMetric: v.paperMetric, totalParams: v.totalParams,
        trainableParams: v.trainableParams, nodeParams: v.nodeParams, latencyMs: v.latencyMs, trainMs: v.training?.ms ?? null,
        trainSteps: v.training?.steps ?? null, misses: v.samples.filter((s) => s.miss).length, samples: join(dir, `variant-${v.variant}`, 'samples.jsonl'), notes: v.notes,
      }));
    }
    out(JSON.stringify({ type: 'summary', node: res.node, task: res.task, dataset: res.dataset, samples: res.variants[0]?.samples.length ?? 0, computeCounts: res.computeCounts, totalMs: res.totalMs, out: dir }));
    return 0;
  }
  const n = res.variants[0]?.samples.length ?? 0;
  out(`${g.doc.name}: node '${res.node}' on ${res.dataset}, ${res.task}, ${n} samples`);
  const rows = res.variants.map((v) => ({
    cells: {
      variant: v.variant === 0 ? '0 (graph)' : String(v.variant),
      type: v.nodeType,
      'total params': fmtCount(v.totalParams),
      trainable: fmtCount(v.trainableParams),
      'ms/sample': v.latencyMs.toFixed(1),
      'train s': v.training ? (v.training.ms / 1000).toFixed(1) : '—',
    },
    metrics: v.metrics,
  }));
  for (const l of metricTable(rows, res.variants[0]?.paperMetric)) out(l);
  const notes = [...new Set(res.variants.flatMap((v) => v.notes.map((x) => `variant ${v.variant}: ${x}`)))];
  if (notes.length) {
    out('');
    for (const x of notes) out(`note: ${x}`);
  }
  const shared = Object.entries(res.computeCounts).filter(([, c]) => c <= n && res.variants.length > 1).map(([id]) => id);
  out('');
  out(`shared by all variants (computed once per sample, then cached): ${shared.join(', ') || 'nothing'}`);
  out(`per-sample outputs: ${join(dir, 'variant-<i>', 'samples.jsonl')}; total ${(res.totalMs / 1000).toFixed(1)} s`);
  return 0;
}
