// The engine's jobs: one typed map from job name to its args, result and events, and its one implementation.
// The worker (worker.ts) runs these on its thread for the host (engine-client.ts); `inProcessEngine()` runs the
// same functions on the caller's thread (the CLI, tests). The host has validated every payload against the
// contract (contract.ts) before it gets here; results and events are validated again at the IPC boundary.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { listSupportedBackends } from 'onnxruntime-node';
import type { Diagnostic, Result } from './contract.js';
import { getNodeType, listNodeTypes, portsOf } from '../nodes/catalog.js';
import { graphDocumentFromJson, type GraphDocument } from '../engine/document.js';
import { validateDocument } from '../engine/validate.js';
import { parameterStats } from '../engine/param-stats.js';
import { cancelRun, runGraph, sharedExecutor, type RunJobArgs, type RunJobEvent } from '../engine/run.js';
import { cancelCompare, compareGraph, type CompareJobArgs, type CompareJobEvent } from '../engine/compare.js';
import type { TrainEvent } from '../engine/messages.js';
import { pauseTraining, resumeTraining, startTraining, stopTraining, type TrainJobArgs } from '../engine/train.js';
import { RECIPE_NAMES } from '../engine/trainer/recipes.js';
import { exportGraph, type ExportJobArgs, type ExportJobEvent } from '../export/index.js';
import { importHfFolder, type ImportResult } from '../formats/hf/import.js';
import { loadModel } from '../onnx/proto.js';
import { tensorSize } from '../onnx/ir.js';

/** What a failed job answers; `code` is one of the contract's error codes. */
export class EngineFailure extends Error {
  constructor(readonly code: 'invalid-file' | 'failed' | 'not-found', message: string) {
    super(message);
    this.name = 'EngineFailure';
  }
}

type JobId = { id: string };
type Empty = Record<string, never>;

/**
 * Every engine job: `args` as the host sends them, `result` as the job answers, `event` what it reports while it
 * runs (jobs that start runs, trainings and exports answer at once with their id and report through events).
 */
export interface EngineJobs {
  probe: { args: Empty; result: Omit<Result<'engine.info'>, 'dataDir' | 'mode'>; event: never };
  'catalog.list': { args: Empty; result: Result<'catalog.list'>; event: never };
  'catalog.ports': { args: { type: string; params: Record<string, unknown> }; result: Result<'catalog.ports'>; event: never };
  'document.parse': { args: { name: string; text: string }; result: { document: GraphDocument }; event: never };
  'document.validate': { args: { document: unknown }; result: Result<'graph.validate'>; event: never };
  'document.parameters': { args: { document: unknown; baseDir: string }; result: Result<'graph.parameters'>; event: never };
  'onnx.inspect': {
    args: { path: string };
    result: Omit<Extract<Result<'model.importOnnx'>, { cancelled: false }>, 'cancelled' | 'name' | 'path'>;
    event: never;
  };
  'hf.import': { args: { dir: string }; result: Omit<ImportResult, 'doc'> & { document: GraphDocument }; event: never };
  'run.start': { args: RunJobArgs; result: JobId; event: RunJobEvent };
  'run.cancel': { args: JobId; result: Empty; event: never };
  'compare.start': { args: CompareJobArgs; result: JobId; event: CompareJobEvent };
  'compare.cancel': { args: JobId; result: { cancelled: boolean }; event: never };
  'train.start': { args: TrainJobArgs; result: JobId; event: TrainEvent };
  'train.pause': { args: JobId; result: Empty; event: never };
  'train.resume': { args: JobId; result: Empty; event: never };
  'train.stop': { args: JobId; result: Empty; event: never };
  'export.start': { args: ExportJobArgs; result: JobId; event: ExportJobEvent };
}

export type JobName = keyof EngineJobs;
export type JobArgs<J extends JobName> = EngineJobs[J]['args'];
export type JobResult<J extends JobName> = EngineJobs[J]['result'];
/** Every event any job reports: the contract's host events. */
export type JobEvent = EngineJobs[JobName]['event'];

/** How a caller reaches the engine: over the worker (EngineClient) or in-process (inProcessEngine). */
export interface EngineLink {
  call<J extends JobName>(job: J, args: JobArgs<J>): Promise<JobResult<J>>;
  onEvent(listener: (event: JobEvent) => void): () => void;
  close(): Promise<void>;
}

type Emit = (event: JobEvent) => void;
type Handlers = { [J in JobName]: (args: JobArgs<J>, emit: Emit) => JobResult<J> | Promise<JobResult<J>> };

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The ports of one node for its params: imported models read them from their file. */
function catalogPorts(args: JobArgs<'catalog.ports'>): JobResult<'catalog.ports'> {
  let def: ReturnType<typeof getNodeType>;
  try {
    def = getNodeType(args.type);
  } catch (e) {
    throw new EngineFailure('not-found', message(e));
  }
  const parsed = def.params.safeParse(args.params);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new EngineFailure('failed', `${args.type} params: ${first ? `${first.path.map(String).join('.') || '(root)'}: ${first.message}` : 'invalid'}`);
  }
  try {
    return portsOf(def, parsed.data);
  } catch (e) {
    throw new EngineFailure('invalid-file', message(e));
  }
}

/** The engine's parser (migrations, strict fields; errors name the file and the JSON path). */
function documentParse(args: JobArgs<'document.parse'>): JobResult<'document.parse'> {
  let json: unknown;
  try {
    json = JSON.parse(args.text);
  } catch (e) {
    throw new EngineFailure('invalid-file', `'${args.name}' is not valid JSON: ${(e as Error).message}`);
  }
  try {
    return { document: graphDocumentFromJson(json, args.name) };
  } catch (e) {
    throw new EngineFailure('invalid-file', message(e));
  }
}

function documentValidate(args: JobArgs<'document.validate'>): JobResult<'document.validate'> {
  let document: GraphDocument;
  try {
    document = graphDocumentFromJson(args.document, 'graph');
  } catch (e) {
    const diagnostics: Diagnostic[] = [{ severity: 'error', message: message(e) }];
    return { diagnostics };
  }
  return { diagnostics: validateDocument(document) };
}

/**
 * Parameter counts of the document, node by node; a node that cannot be built gets an error, the rest are counted.
 * Uses the run engine's executor, so fragments built here serve runs too (and unchanged nodes are never rebuilt).
 */
async function documentParameters(args: JobArgs<'document.parameters'>): Promise<JobResult<'document.parameters'>> {
  let document: GraphDocument;
  try {
    document = graphDocumentFromJson(args.document, 'graph');
  } catch (e) {
    throw new EngineFailure('invalid-file', message(e));
  }
  const report = await parameterStats(sharedExecutor(), document, args.baseDir, { tolerateErrors: true });
  return {
    nodes: report.nodes.map((n) => ({
      id: n.id,
      onnx: n.onnx,
      frozen: n.frozen,
      params: n.params,
      adapterParams: n.adapterParams,
      trainable: n.trainable,
      bytes: n.bytes,
      ...(n.sharedWith ? { sharedWith: n.sharedWith } : {}),
      ...(n.describeOnly ? { describeOnly: true } : {}),
      ...(n.error ? { error: n.error } : {}),
    })),
    total: report.total,
  };
}

function onnxInspect(args: JobArgs<'onnx.inspect'>): JobResult<'onnx.inspect'> {
  const bytes = readFileSync(args.path);
  const model = loadModel(args.path);
  const ports = (values: typeof model.graph.inputs) => values.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape }));
  const initializerNames = new Set(model.graph.initializers.keys());
  let parameterCount = 0;
  for (const t of model.graph.initializers.values()) parameterCount += tensorSize(t.dims);
  return {
    sha256: createHash('sha256').update(bytes).digest('hex'),
    opset: model.opsets[''] ?? 0,
    // Old exporters list initializers among the inputs; they are weights, not ports.
    inputs: ports(model.graph.inputs.filter((v) => !initializerNames.has(v.name))),
    outputs: ports(model.graph.outputs),
    parameterCount,
  };
}

/**
 * A Hugging Face folder (the host checked it against its file policy) as a graph; the reader's and the mappings'
 * errors name the file, tensor or field, and come back as `invalid-file`.
 */
function hfImport(args: JobArgs<'hf.import'>): JobResult<'hf.import'> {
  let imported: ImportResult;
  try {
    imported = importHfFolder(args.dir);
  } catch (e) {
    throw new EngineFailure('invalid-file', `cannot import '${args.dir}': ${message(e)}`);
  }
  return { document: imported.doc, summary: imported.summary, notes: imported.notes };
}

/**
 * Starts a long job and answers at once with its id; the job reports through events, and a failure it does not
 * report itself becomes its channel's `error` event.
 */
function started<A extends JobId, E extends JobEvent>(
  entry: (args: A, emit: (e: E) => void) => Promise<void>,
  failed: (id: string, message: string) => E,
): (args: A, emit: Emit) => JobId {
  return (args, emit) => {
    entry(args, emit).catch((e: unknown) => emit(failed(args.id, message(e))));
    return { id: args.id };
  };
}

const jobs: Handlers = {
  probe: async () => {
    const backends = listSupportedBackends().map((b) => b.name);
    // The provider runs actually use: COMPOSER_EP when set, else the best one a probe session could be created on.
    const preferred = (await sharedExecutor().resolveExecutionProviders())[0];
    // Every engine part is part of every build (the field stays for the renderer, which enables panels by it).
    const modules = { catalog: true, document: true, validate: true, parameters: true, run: true, compare: true, train: true, recipes: true, export: true, hf: true };
    return { executionProvider: preferred, availableProviders: backends, modules, recipes: [...RECIPE_NAMES] };
  },
  'catalog.list': () => ({ types: listNodeTypes() }),
  'catalog.ports': catalogPorts,
  'document.parse': documentParse,
  'document.validate': documentValidate,
  'document.parameters': documentParameters,
  'onnx.inspect': onnxInspect,
  'hf.import': hfImport,
  'run.start': started(runGraph, (id, message): RunJobEvent => ({ channel: 'run.event', id, type: 'error', message })),
  'run.cancel': cancelRun,
  'compare.start': started(compareGraph, (id, message): CompareJobEvent => ({ channel: 'compare.event', id, type: 'error', message })),
  'compare.cancel': cancelCompare,
  'train.start': started<TrainJobArgs, TrainEvent>(startTraining, (id, message): TrainEvent => ({ channel: 'train.event', id, type: 'error', message })),
  'train.pause': pauseTraining,
  'train.resume': resumeTraining,
  'train.stop': stopTraining,
  'export.start': started(exportGraph, (id, message): ExportJobEvent => ({ channel: 'export.event', id, type: 'error', message })),
};

/** Runs one job on this thread. */
export async function runJob<J extends JobName>(job: J, args: JobArgs<J>, emit: Emit): Promise<JobResult<J>> {
  const handler: Handlers[J] = jobs[job];
  return handler(args, emit);
}

/** The engine on the caller's thread, behind the same interface as the worker (no copy of args, no IPC). */
export function inProcessEngine(): EngineLink {
  const listeners = new Set<(event: JobEvent) => void>();
  const emit: Emit = (event) => {
    for (const listener of listeners) listener(event);
  };
  return {
    call: (job, args) => runJob(job, args, emit),
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: async () => undefined,
  };
}
