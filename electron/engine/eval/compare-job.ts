// The host's dataset compare (compare.start with `dataset`): compareOnDataset reported as compare.event messages —
// progress while each variant trains and is scored, then one result per variant with its metrics, parameters,
// latency, training time and its worst samples (image, references, prediction) for the app's misses view.

import type { CompareDatasetArgs, CompareJobArgs, CompareJobEvent } from '../compare.js';
import type { GraphDocument } from '../document.js';
import { encodePng } from '../image.js';
import { loadSampleImage } from '../datasets/index.js';
import { sharedExecutor } from '../run.js';
import { defaultTask } from './runner.js';
import { type EvalItem, loadEvalSet } from './datasets.js';
import type { EvalSampleRecord } from './runner.js';
import { compareOnDataset } from './compare-dataset.js';

/** Misses sent per variant (each with a small PNG). */
const MAX_MISSES = 24;

async function thumbnail(item: EvalItem): Promise<string | undefined> {
  if (!item.sample.image && !item.sample.imagePath) return undefined;
  return `data:image/png;base64,${(await encodePng(await loadSampleImage(item.sample))).toString('base64')}`;
}

export async function compareDatasetJob(
  doc: GraphDocument,
  args: CompareJobArgs & { dataset: CompareDatasetArgs },
  emit: (e: CompareJobEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const base = { channel: 'compare.event' as const, id: args.id };
  const d = args.dataset;
  const training = d.trainSteps !== undefined && d.recipe !== undefined ? { steps: d.trainSteps, recipe: d.recipe, dataset: d.name, reinit: d.reinit } : undefined;
  const set = loadEvalSet(d.name, { task: d.task ?? defaultTask(doc), split: d.split ?? (training && d.name !== 'shapes' ? 'eval' : undefined), limit: d.limit });
  const variants = args.candidates.length + 1;
  const total = variants * set.items.length;
  let done = 0;
  emit({ ...base, type: 'started', total, task: set.task, samples: set.items.length, message: `${set.name}: ${set.task}, ${set.items.length} samples` });
  const misses = new Map<number, Array<{ record: EvalSampleRecord; item: EvalItem }>>();
  await compareOnDataset(doc, {
    baseDir: args.baseDir,
    node: args.nodeId,
    with: args.candidates,
    set,
    prompt: args.inputs?.prompt,
    executor: sharedExecutor(),
    signal,
    ...(training ? { train: training } : {}),
    onEvent: (e) => {
      if (e.type === 'train-step' && (e.step % 10 === 0 || e.step === e.totalSteps)) {
        emit({ ...base, type: 'progress', variant: e.variant, done, total, message: `variant ${e.variant}: training step ${e.step}/${e.totalSteps}, loss ${e.loss.toFixed(4)}` });
      } else if (e.type === 'eval-progress') {
        done = e.variant * set.items.length + Math.min(e.progress.done, set.items.length);
        emit({ ...base, type: 'progress', variant: e.variant, done, total, message: `variant ${e.variant}: scoring ${e.progress.done}/${e.progress.total}, ETA ${Math.round(e.progress.etaSeconds)} s` });
      } else if (e.type === 'sample' && e.record.miss) {
        const list = misses.get(e.variant) ?? [];
        list.push({ record: e.record, item: e.item });
        misses.set(e.variant, list);
      }
    },
  }).then(async (res) => {
    for (const v of res.variants) {
      const paper = v.paperMetric;
      // The worst first by the sample's own score of the paper metric (or the first score it has).
      const scoreOf = (r: EvalSampleRecord) => r.scores[paper] ?? Object.values(r.scores)[0] ?? 0;
      const worst = (misses.get(v.variant) ?? []).sort((a, b) => scoreOf(a.record) - scoreOf(b.record)).slice(0, MAX_MISSES);
      emit({
        ...base,
        type: 'result',
        variant: v.variant,
        nodeType: v.nodeType,
        metrics: v.metrics,
        paperMetric: paper,
        task: res.task,
        samples: v.samples.length,
        latencyMs: v.latencyMs,
        totalParams: v.totalParams,
        trainableParams: v.trainableParams,
        nodeParams: v.nodeParams,
        ...(v.training ? { trainMs: v.training.ms, trainSteps: v.training.steps } : {}),
        misses: await Promise.all(worst.map(async (m) => ({
          id: m.record.id, imageDataUrl: await thumbnail(m.item), reference: m.record.reference, prediction: m.record.prediction, score: scoreOf(m.record),
        }))),
        done: (v.variant + 1) * set.items.length,
        total,
        message: [`${v.samples.filter((s) => s.miss).length} of ${v.samples.length} samples missed`, ...v.notes].join('\n'),
      });
    }
    emit({ ...base, type: 'done', done: total, total });
  });
}
