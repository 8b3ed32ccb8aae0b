// Engine entry for training jobs (the engine jobs `train.*` of electron/host/engine-jobs.ts):
// startTraining runs one job and reports through contract `train.event`s; pause/resume/stop act between steps.

import { z } from 'zod';
import { graphDocumentFromJson } from './document.js';
import { trainConfigSchema, type TrainEvent } from './messages.js';
import { TrainControl, type TrainerEvent, train } from './trainer/trainer.js';

/** What the host sends (contract `train.start` params, paths already checked by the file policy). */
const startArgsSchema = z.object({
  id: z.string().min(1),
  document: z.unknown(),
  baseDir: z.string().min(1),
  checkpointDir: z.string().min(1).optional(),
  config: trainConfigSchema,
});
/** What the host sends; startTraining checks it again (it is an entry point and names a bad field). */
export type TrainJobArgs = z.input<typeof startArgsSchema>;

const controlArgsSchema = z.object({ id: z.string().min(1) });

const jobs = new Map<string, TrainControl>();

function parse<S extends z.ZodTypeAny>(schema: S, args: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(args);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`${what}: field '${issue?.path.join('.')}': ${issue?.message}`);
  }
  return r.data;
}

/** Trainer event → contract event (JSON-safe). */
function toTrainEvent(id: string, e: TrainerEvent): TrainEvent | undefined {
  const base = { channel: 'train.event' as const, id };
  switch (e.type) {
    case 'started':
      return { ...base, type: 'started', step: e.startStep, totalSteps: e.totalSteps, message: `training ${e.trainable} parameters in ${e.nodes.train.join(', ')}` };
    case 'step':
      return { ...base, type: 'step', step: e.step, totalSteps: e.totalSteps, loss: e.loss, learningRate: e.lr, elapsedMs: e.elapsedMs };
    case 'eval':
      return { ...base, type: 'step', step: e.step, metrics: e.metrics };
    case 'checkpoint':
      return { ...base, type: 'checkpoint', step: e.step, checkpointPath: e.path };
    case 'paused':
    case 'resumed':
    case 'stopped':
      return { ...base, type: e.type, step: e.step };
    case 'done':
      return { ...base, type: 'done', step: e.step, checkpointPath: e.checkpoint };
  }
}

export async function startTraining(args: unknown, emit: (e: TrainEvent) => void): Promise<void> {
  const a = parse(startArgsSchema, args, 'train.start');
  if (jobs.has(a.id)) throw new Error(`training job '${a.id}' is already running`);
  const document = graphDocumentFromJson(a.document, 'the training graph');
  const control = new TrainControl();
  jobs.set(a.id, control);
  try {
    const c = a.config;
    await train({
      graph: document,
      baseDir: a.baseDir,
      recipe: c.recipe,
      steps: c.steps,
      batchSize: c.batchSize,
      learningRate: c.learningRate,
      optimizer: c.optimizer,
      dataset: c.dataset,
      datasetSize: c.datasetSize,
      seed: c.seed,
      evalEvery: c.evalEvery,
      checkpointEvery: c.checkpointEvery,
      checkpointDir: a.checkpointDir,
      resume: c.resumeFrom,
      control,
      onEvent: (e) => {
        const ev = toTrainEvent(a.id, e);
        if (ev) emit(ev);
      },
    });
  } finally {
    jobs.delete(a.id);
  }
}

function controlOf(args: unknown, what: string): TrainControl {
  const { id } = parse(controlArgsSchema, args, what);
  const control = jobs.get(id);
  if (!control) throw new Error(`${what}: there is no running training job '${id}'`);
  return control;
}

export function pauseTraining(args: unknown): Record<string, never> {
  controlOf(args, 'train.pause').pause();
  return {};
}

export function resumeTraining(args: unknown): Record<string, never> {
  controlOf(args, 'train.resume').resume();
  return {};
}

export function stopTraining(args: unknown): Record<string, never> {
  controlOf(args, 'train.stop').stop();
  return {};
}
