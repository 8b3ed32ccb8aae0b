// Engine worker bootstrap: runs in a worker_threads thread (ORT's session.run blocks its thread) and loads the
// engine modules on demand. A module that does not exist yet answers "not available yet"; nothing is faked.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parentPort } from 'node:worker_threads';
import { describeZodError, graphDocumentWireSchema, type Diagnostic, type HostEvent } from './contract.js';
import {
  CONTROL_FUNCTIONS,
  ENGINE_MODULES,
  type EngineModuleName,
  type WorkerMessage,
  type WorkerReply,
  type WorkerRequest,
} from './worker-protocol.js';
import { loadModel } from '../onnx/proto.js';
import { tensorSize } from '../onnx/ir.js';
import type { InspectReport as ParameterReport } from '../engine/param-stats.js';
import type { ImportResult } from '../formats/hf/import.js';

class WorkerFailure extends Error {
  constructor(readonly code: 'not-available' | 'invalid-file' | 'failed' | 'not-found', message: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Engine module loading

const loaded = new Map<EngineModuleName, Record<string, unknown>>();

/** The module's file next to this one: `.ts` when running from source (tsx), `.js` in the bundle. */
function moduleUrl(name: EngineModuleName): URL | null {
  const base = `../${ENGINE_MODULES[name].file}`;
  for (const ext of ['.ts', '.js']) {
    const url = new URL(base + ext, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  return null;
}

function isAvailable(name: EngineModuleName): boolean {
  return moduleUrl(name) !== null;
}

async function engineModule(name: EngineModuleName): Promise<Record<string, unknown>> {
  const cached = loaded.get(name);
  if (cached) return cached;
  const spec = ENGINE_MODULES[name];
  const url = moduleUrl(name);
  if (!url) {
    throw new WorkerFailure('not-available', `not available yet: the ${name} engine (electron/${spec.file}.ts) is not part of this build`);
  }
  const mod = (await import(url.href)) as Record<string, unknown>;
  for (const exp of spec.exports) {
    if (mod[exp] === undefined) {
      throw new WorkerFailure('not-available', `not available yet: electron/${spec.file}.ts does not export '${exp}'`);
    }
  }
  loaded.set(name, mod);
  return mod;
}

function fn<T extends (...args: never[]) => unknown>(mod: Record<string, unknown>, name: string): T {
  const value = mod[name];
  if (typeof value !== 'function') throw new WorkerFailure('not-available', `not available yet: '${name}' is not a function`);
  return value as T;
}

// ---------------------------------------------------------------------------------------------------------------
// Operations

async function probe(): Promise<unknown> {
  const ort = await import('onnxruntime-node');
  const backends = ort.listSupportedBackends().map((b) => b.name);
  // The provider runs actually use: COMPOSER_EP when set, else the best one a probe session could be created on.
  const preferred = (await (await import('../engine/run.js')).sharedExecutor().resolveExecutionProviders())[0];
  const modules: Record<string, boolean> = {};
  for (const name of Object.keys(ENGINE_MODULES) as EngineModuleName[]) modules[name] = isAvailable(name);
  const names = modules.recipes ? (await engineModule('recipes')).RECIPE_NAMES : [];
  const recipes = Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : [];
  return { executionProvider: preferred, availableProviders: backends, modules, recipes };
}

async function catalogList(): Promise<unknown> {
  const mod = await engineModule('catalog');
  return { types: fn<() => unknown[]>(mod, 'listNodeTypes')() };
}

interface ParamsSchema {
  safeParse(v: unknown): { success: true; data: unknown } | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } };
}

/** The ports of one node for its params: imported models read them from their file. */
async function catalogPorts(args: { type: string; params: Record<string, unknown> }): Promise<unknown> {
  const mod = await engineModule('catalog');
  let def: { params: ParamsSchema };
  try {
    def = fn<(type: string) => { params: ParamsSchema }>(mod, 'getNodeType')(args.type);
  } catch (e) {
    throw new WorkerFailure('not-found', e instanceof Error ? e.message : String(e));
  }
  const parsed = def.params.safeParse(args.params);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new WorkerFailure('failed', `${args.type} params: ${first ? `${first.path.map(String).join('.') || '(root)'}: ${first.message}` : 'invalid'}`);
  }
  try {
    return fn<(def: unknown, params: unknown) => unknown>(mod, 'portsOf')(def, parsed.data);
  } catch (e) {
    throw new WorkerFailure('invalid-file', e instanceof Error ? e.message : String(e));
  }
}

/** Structure first (the contract's wire shape), then the engine's own parser (migrations, strict fields). */
async function documentParse(args: { name: string; text: string }): Promise<unknown> {
  let json: unknown;
  try {
    json = JSON.parse(args.text);
  } catch (e) {
    throw new WorkerFailure('invalid-file', `'${args.name}' is not valid JSON: ${(e as Error).message}`);
  }
  let document: unknown = json;
  if (isAvailable('document')) {
    const parse = fn<(raw: unknown, fileName: string) => unknown>(await engineModule('document'), 'graphDocumentFromJson');
    try {
      document = parse(json, args.name);
    } catch (e) {
      throw new WorkerFailure('invalid-file', e instanceof Error ? e.message : String(e));
    }
  }
  const wire = graphDocumentWireSchema.safeParse(document);
  if (!wire.success) throw new WorkerFailure('invalid-file', describeZodError(wire.error, `'${args.name}' is not a Composer graph`));
  return { document: wire.data };
}

async function documentValidate(args: { document: unknown }): Promise<unknown> {
  const toDocument = fn<(raw: unknown, fileName: string) => unknown>(await engineModule('document'), 'graphDocumentFromJson');
  let document: unknown;
  try {
    document = toDocument(args.document, 'graph');
  } catch (e) {
    const diagnostics: Diagnostic[] = [{ severity: 'error', message: e instanceof Error ? e.message : String(e) }];
    return { diagnostics };
  }
  const validate = fn<(doc: unknown) => Diagnostic[]>(await engineModule('validate'), 'validateDocument');
  return { diagnostics: validate(document) };
}

/**
 * Parameter counts of the document, node by node; a node that cannot be built gets an error, the rest are counted.
 * Uses the run engine's executor, so fragments built here serve runs too (and unchanged nodes are never rebuilt).
 */
async function documentParameters(args: { document: unknown; baseDir: string }): Promise<unknown> {
  const toDocument = fn<(raw: unknown, fileName: string) => unknown>(await engineModule('document'), 'graphDocumentFromJson');
  let document: unknown;
  try {
    document = toDocument(args.document, 'graph');
  } catch (e) {
    throw new WorkerFailure('invalid-file', e instanceof Error ? e.message : String(e));
  }
  const stats = fn<(executor: unknown, doc: unknown, baseDir: string, opts: { tolerateErrors: boolean }) => Promise<ParameterReport>>(
    await engineModule('parameters'),
    'parameterStats',
  );
  const executor = fn<() => unknown>(await engineModule('run'), 'sharedExecutor')();
  const report = await stats(executor, document, args.baseDir, { tolerateErrors: true });
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

function onnxInspect(args: { path: string }): unknown {
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
async function hfImport(args: { dir: string }): Promise<unknown> {
  const importFolder = fn<(dir: string) => ImportResult>(await engineModule('hf'), 'importHfFolder');
  let imported: ImportResult;
  try {
    imported = importFolder(args.dir);
  } catch (e) {
    throw new WorkerFailure('invalid-file', `cannot import '${args.dir}': ${e instanceof Error ? e.message : String(e)}`);
  }
  const wire = graphDocumentWireSchema.safeParse(imported.doc);
  if (!wire.success) throw new WorkerFailure('failed', describeZodError(wire.error, `the graph imported from '${args.dir}'`));
  return { document: wire.data, summary: imported.summary, notes: imported.notes };
}

/** Jobs (runs, trainings, exports) the engine reports on through events. */
function emit(event: HostEvent): void {
  post({ kind: 'event', event });
}

const JOB_CHANNEL = { run: 'run.event', compare: 'compare.event', train: 'train.event', export: 'export.event' } as const;

/**
 * Starts a job and answers at once with its id; the job reports through events. A missing engine module fails
 * the request itself, so the user sees "not available yet" right where they pressed the button.
 */
async function engineJob(name: 'run' | 'compare' | 'train' | 'export', args: { id: string }): Promise<unknown> {
  const mod = await engineModule(name);
  const entry = fn<(args: unknown, emit: (e: HostEvent) => void) => Promise<unknown>>(mod, ENGINE_MODULES[name].exports[0]);
  entry(args, emit).catch((e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    emit({ channel: JOB_CHANNEL[name], id: args.id, type: 'error', message } as HostEvent);
  });
  return { id: args.id };
}

async function control(op: keyof typeof CONTROL_FUNCTIONS, args: unknown): Promise<unknown> {
  const { module, fn: name } = CONTROL_FUNCTIONS[op];
  const mod = await engineModule(module);
  const handler = mod[name];
  if (typeof handler !== 'function') throw new WorkerFailure('not-available', `not available yet: the ${module} engine has no '${name}'`);
  return (handler as (a: unknown) => unknown)(args);
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'probe': return probe();
    case 'catalog.list': return catalogList();
    case 'catalog.ports': return catalogPorts(req.args as { type: string; params: Record<string, unknown> });
    case 'document.parse': return documentParse(req.args as { name: string; text: string });
    case 'document.validate': return documentValidate(req.args as { document: unknown });
    case 'document.parameters': return documentParameters(req.args as { document: unknown; baseDir: string });
    case 'onnx.inspect': return onnxInspect(req.args as { path: string });
    case 'hf.import': return hfImport(req.args as { dir: string });
    case 'run.start': return engineJob('run', req.args as { id: string });
    case 'compare.start': return engineJob('compare', req.args as { id: string });
    case 'train.start': return engineJob('train', req.args as { id: string });
    case 'export.start': return engineJob('export', req.args as { id: string });
    case 'run.cancel':
    case 'compare.cancel':
    case 'train.pause':
    case 'train.resume':
    case 'train.stop':
      return control(req.op, req.args);
  }
}

// ---------------------------------------------------------------------------------------------------------------

function post(message: WorkerMessage): void {
  parentPort?.postMessage(message);
}

if (!parentPort) throw new Error('electron/host/worker.ts must run in a worker thread');

parentPort.on('message', (req: WorkerRequest) => {
  handle(req).then(
    (result) => post({ kind: 'reply', reply: { id: req.id, ok: true, result: result ?? {} } }),
    (e: unknown) => {
      const reply: WorkerReply =
        e instanceof WorkerFailure
          ? { id: req.id, ok: false, code: e.code, message: e.message }
          : { id: req.id, ok: false, code: 'failed', message: e instanceof Error ? e.message : String(e) };
      post({ kind: 'reply', reply });
    },
  );
});
