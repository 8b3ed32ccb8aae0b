// The engine's side of the contract, written once: the training config the host sends and the events the run,
// compare, train and export jobs report. electron/host/contract.ts imports these schemas (the host validates with them),
// the engine types its jobs by them, and the renderer sees them as types only. Only zod here: the host's main
// thread imports this file, so nothing that loads onnxruntime may be imported (the executor's events: a type).

import { z } from 'zod';
import type { RunEvent as ExecutorEvent } from './executor.js';

/** A training job's settings (contract `train.start` `config`). */
export const trainConfigSchema = z.object({
  steps: z.number().int().positive(),
  learningRate: z.number().positive(),
  batchSize: z.number().int().positive().default(1),
  optimizer: z.enum(['adamw', 'sgd']).default('adamw'),
  /** A built-in dataset name (`shapes`) or the absolute path of a dataset file (jsonl, csv, COCO or LLaVA json). */
  dataset: z.string().min(1),
  /** A recipe the trainer implements (engine.info lists them); the trainer refuses other names, listing its own. */
  recipe: z.string().min(1).default('captioning'),
  /** Built-in datasets: how many samples to generate. */
  datasetSize: z.number().int().positive().max(100_000).default(256),
  /** Evaluate on the held-out split every N steps (0 = never). */
  evalEvery: z.number().int().nonnegative().default(0),
  checkpointEvery: z.number().int().positive().optional(),
  resumeFrom: z.string().optional(),
  seed: z.number().int().default(0),
});
export type TrainConfig = z.input<typeof trainConfigSchema>;
export type ParsedTrainConfig = z.output<typeof trainConfigSchema>;

const tensorSummary = z.object({ dtype: z.string(), dims: z.array(z.number()), preview: z.string().optional() });

// ---------------------------------------------------------------------------------------------------------------
// Node events: the one vocabulary for what the executor reports about a node, used by the app's `run.event`, by
// compare's progress, and by `vlmc run --json` / `vlmc compare --json`.

const NODE_EVENT_TYPES = ['started', 'progress', 'computed', 'cached', 'error'] as const;

const nodeEventFields = {
  node: z.string(),
  nodeType: z.string().optional(),
  /** progress: done/total steps inside a node (generation: one per token, message 'token'; diffusion; weights). */
  done: z.number().optional(),
  total: z.number().optional(),
  ms: z.number().optional(),
  message: z.string().optional(),
};

export const nodeEventSchema = z.object({ type: z.enum(NODE_EVENT_TYPES), ...nodeEventFields });
export type NodeEvent = z.infer<typeof nodeEventSchema>;

/** The `message` of a generation step's progress: one event per generated token. */
export const TOKEN_PROGRESS = 'token';

/** The executor's event (engine/executor.ts) in the node-event vocabulary. */
export function nodeEvent(e: ExecutorEvent): NodeEvent {
  switch (e.type) {
    case 'started': return { type: 'started', node: e.node, nodeType: e.nodeType };
    case 'progress': return { type: 'progress', node: e.node, done: e.step, total: e.total, message: e.detail };
    case 'computed': return { type: 'computed', node: e.node, ms: e.ms };
    case 'cached': return { type: 'cached', node: e.node };
    case 'error': return { type: 'error', node: e.node, message: e.message };
  }
}

/** One line for a node event: `node 'vit' cached`, `node 'llm' computed in 12.3 ms`, `node 'llm' token 3/20`. */
export function describeNodeEvent(e: NodeEvent): string {
  switch (e.type) {
    case 'started': return `node '${e.node}' started${e.nodeType ? ` (${e.nodeType})` : ''}`;
    case 'progress': return `node '${e.node}' ${e.message ?? 'step'} ${e.done ?? 0}/${e.total ?? '?'}`;
    case 'computed': return `node '${e.node}' computed in ${(e.ms ?? 0).toFixed(1)} ms`;
    case 'cached': return `node '${e.node}' cached`;
    case 'error': return `node '${e.node}' failed: ${e.message ?? 'unknown error'}`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Job events

export const runEventSchema = z.object({
  channel: z.literal('run.event'),
  id: z.string(),
  /** `done` closes a run that finished; `error` without `node` closes one that failed; `cancelled` one that stopped. */
  type: z.enum([...NODE_EVENT_TYPES, 'result', 'cancelled', 'done']),
  /** started … error: the node events; `error` and `result` name a node too. */
  ...nodeEventFields,
  node: z.string().optional(),
  outputs: z.record(z.string(), tensorSummary).optional(),
  /** result: decoded text or a PNG as a data URL, per output node. */
  text: z.string().optional(),
  imageDataUrl: z.string().optional(),
  /** done: which nodes ran and which came from the cache, and the wall time. */
  computed: z.array(z.string()).optional(),
  cached: z.array(z.string()).optional(),
  totalMs: z.number().optional(),
});
/** Compare: one `result` per (variant, image); variant 0 is the graph as it is, 1… the candidates in order. */
export const compareEventSchema = z.object({
  channel: z.literal('compare.event'),
  id: z.string(),
  type: z.enum(['started', 'progress', 'result', 'done', 'error', 'cancelled']),
  variant: z.number().int().nonnegative().optional(),
  /** The node type this variant puts at the compared node. */
  nodeType: z.string().optional(),
  image: z.number().int().nonnegative().optional(),
  imageName: z.string().optional(),
  text: z.string().optional(),
  imageDataUrl: z.string().optional(),
  latencyMs: z.number().optional(),
  /** Parameters of the whole variant graph, and how many of them training would update. */
  totalParams: z.number().optional(),
  trainableParams: z.number().optional(),
  /** Parameters of the compared node alone. */
  nodeParams: z.number().optional(),
  done: z.number().optional(),
  total: z.number().optional(),
  message: z.string().optional(),
  /** Dataset mode, per variant result: its metrics, the task's paper metric, training time and its worst samples. */
  metrics: z.record(z.string(), z.number()).optional(),
  paperMetric: z.string().optional(),
  task: z.string().optional(),
  samples: z.number().int().optional(),
  trainMs: z.number().optional(),
  trainSteps: z.number().int().optional(),
  misses: z
    .array(z.object({ id: z.string(), imageDataUrl: z.string().optional(), reference: z.array(z.string()), prediction: z.string(), score: z.number().optional() }))
    .optional(),
});

export const trainEventSchema = z.object({
  channel: z.literal('train.event'),
  id: z.string(),
  type: z.enum(['started', 'step', 'checkpoint', 'paused', 'resumed', 'stopped', 'done', 'error']),
  step: z.number().int().optional(),
  totalSteps: z.number().int().optional(),
  loss: z.number().optional(),
  learningRate: z.number().optional(),
  /** Held-out metrics at an evaluation step (e.g. `eval_loss`, `token_accuracy`). */
  metrics: z.record(z.string(), z.number()).optional(),
  /** Wall time since the start, excluding pauses (the panel derives the ETA from it). */
  elapsedMs: z.number().optional(),
  checkpointPath: z.string().optional(),
  message: z.string().optional(),
});

export const exportEventSchema = z.object({
  channel: z.literal('export.event'),
  id: z.string(),
  type: z.enum(['started', 'progress', 'done', 'error']),
  message: z.string().optional(),
  /** The export folder (done) or the file just written (progress). */
  path: z.string().optional(),
  /** done: every file written, relative to `path`, with its size. */
  files: z.array(z.object({ path: z.string(), bytes: z.number() })).optional(),
});

export type RunEvent = z.infer<typeof runEventSchema>;
export type CompareEvent = z.infer<typeof compareEventSchema>;
export type TrainEvent = z.infer<typeof trainEventSchema>;
export type ExportEvent = z.infer<typeof exportEventSchema>;
