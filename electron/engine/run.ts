// The worker-side run entry (`run.start` / `run.cancel`): one long-lived Executor per worker, so its output cache
// and built sessions persist between runs; run-time inputs mapped onto the graph's input nodes; executor events
// forwarded as `run.event`; cancellation through an AbortController per run id.

import { graphDocumentFromJson, type GraphDocument } from './document.js';
import { nodeEvent, type RunEvent } from './messages.js';
import { Executor, RunCancelled, RunError, type RunInput } from './executor.js';
import { executionProviderPolicy } from './providers.js';
import { collectOutputs, mapRunInputs, pngDataUrl, type RunJobInputs } from './run-io.js';

// The input rule, for the callers that know it by this module.
export { mapRunInputs, type RunImageInput, type RunJobInputs } from './run-io.js';

/** The contract's `run.event` (electron/engine/messages.ts, which the host validates them against). */
export type RunJobEvent = RunEvent;

export interface RunJobArgs {
  id: string;
  /** The document as it came over the contract (the engine parses it strictly here). */
  document: unknown;
  outputs?: string[];
  inputs?: RunJobInputs;
  baseDir: string;
  /**
   * A cancel flag in shared memory (1 = cancel), raised by the host directly: ORT blocks this thread during a
   * run, so a `run.cancel` message would only be read once the run is over.
   */
  cancelFlag?: Int32Array;
}

export type Emit = (event: RunJobEvent) => void;

// ---------------------------------------------------------------------------------------------------------------
// The worker's executor

let executor: Executor | null = null;

/** The worker's one executor (compare and export reuse it so they share the cache and the built sessions). */
export function sharedExecutor(): Executor {
  // The provider policy of providers.ts: COMPOSER_EP, else the best one that works on this machine (CPU fallback).
  executor ??= new Executor({ executionProviders: executionProviderPolicy() });
  return executor;
}

// ---------------------------------------------------------------------------------------------------------------
// Jobs

const running = new Map<string, AbortController>();
/** Runs go one after another: they share the executor, and ORT blocks the thread anyway. */
let queue: Promise<unknown> = Promise.resolve();

export function parseRunDocument(raw: unknown): GraphDocument {
  return graphDocumentFromJson(raw, 'graph');
}

/** Starts a run and resolves when it has finished, failed or been cancelled; every outcome is reported as an event. */
export function runGraph(args: RunJobArgs, emit: Emit): Promise<void> {
  const controller = new AbortController();
  running.set(args.id, controller);
  const job = queue.then(() => execute(args, cancelSignal(controller.signal, args.cancelFlag), emit)).finally(() => running.delete(args.id));
  queue = job.catch(() => undefined);
  return job;
}

/**
 * The executor and the generation loop only read `signal.aborted` between nodes and tokens; this signal also
 * answers from the shared flag, so a cancel gets through while ORT keeps the thread busy.
 */
function cancelSignal(local: AbortSignal, flag: Int32Array | undefined): AbortSignal {
  if (!flag) return local;
  const view = { get aborted() { return local.aborted || Atomics.load(flag, 0) === 1; } };
  return view as AbortSignal;
}

export function cancelRun(args: { id: string }): Record<string, never> {
  running.get(args.id)?.abort();
  return {};
}

async function execute(args: RunJobArgs, signal: AbortSignal, emit: Emit): Promise<void> {
  const id = args.id;
  const send = (e: Omit<RunJobEvent, 'channel' | 'id'>) => emit({ channel: 'run.event', id, ...e });
  if (signal.aborted) return void send({ type: 'cancelled' });
  let doc: GraphDocument;
  let inputs: Record<string, RunInput>;
  try {
    doc = parseRunDocument(args.document);
    inputs = mapRunInputs(doc, args.inputs);
  } catch (e) {
    return void send({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  }
  try {
    const result = await sharedExecutor().run(doc, {
      baseDir: args.baseDir,
      targets: args.outputs && args.outputs.length ? args.outputs : undefined,
      inputs,
      signal,
      onEvent: (e) => send(nodeEvent(e)),
    });
    // The app shows the first image of a batch.
    for (const o of await collectOutputs(doc, result)) {
      send({ type: 'result', node: o.node, ...(o.text !== undefined ? { text: o.text } : {}), ...(o.pngs ? { imageDataUrl: pngDataUrl(o.pngs[0]) } : {}) });
    }
    send({ type: 'done', computed: result.computed, cached: result.cached, totalMs: result.totalMs });
  } catch (e) {
    if (e instanceof RunCancelled || signal.aborted) return void send({ type: 'cancelled' });
    const message = e instanceof Error ? e.message : String(e);
    // Validation failures name a node but never reached it: mark it, then close the run.
    if (e instanceof RunError && e.nodeId && e.diagnostics.length) send({ type: 'error', node: e.nodeId, message });
    send({ type: 'error', message });
  }
}
