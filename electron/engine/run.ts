// The worker-side run entry (`run.start` / `run.cancel`): one long-lived Executor per worker, so its output cache
// and built sessions persist between runs; run-time inputs mapped onto the graph's input nodes; executor events
// forwarded as `run.event`; cancellation through an AbortController per run id.

import { imageOutputParams } from '../nodes/io.js';
import { graphDocumentFromJson, type GraphDocument } from './document.js';
import type { RunEvent } from './messages.js';
import { Executor, RunCancelled, RunError, type RunInput, type RunResult, type Value } from './executor.js';
import { imagesToPng } from './host-steps/io.js';
import { executionProviderPolicy } from './providers.js';

/** An image given at run time: bytes (uploaded or dropped) or a path the host already checked. */
export interface RunImageInput {
  name: string;
  path?: string;
  bytes?: Uint8Array;
}

/** Run-time data of one run (the host resolved every path through its file policy). */
export interface RunJobInputs {
  image?: RunImageInput;
  prompt?: string;
  /** The io.text node that takes the prompt; default the first io.text node in document order. */
  promptNode?: string;
}

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

export class RunInputError extends Error {
  override name = 'RunInputError';
}

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
// Run-time inputs → input nodes

function runInputOf(image: RunImageInput): RunInput {
  if (image.bytes) return { bytes: image.bytes };
  if (image.path) return { path: image.path };
  throw new RunInputError(`the run image '${image.name}' has neither bytes nor a path`);
}

/**
 * The rule: the image goes to every `io.image` node; the prompt goes to the `io.text` node named by `promptNode`,
 * or else to the first `io.text` node in document order. Data with nowhere to go is an error, not silently dropped.
 */
export function mapRunInputs(doc: GraphDocument, inputs: RunJobInputs = {}): Record<string, RunInput> {
  const mapped: Record<string, RunInput> = {};
  if (inputs.image) {
    const imageNodes = doc.nodes.filter((n) => n.type === 'io.image');
    if (imageNodes.length === 0) throw new RunInputError(`an image was given, but the graph has no Image (io.image) node to take it`);
    const value = runInputOf(inputs.image);
    for (const n of imageNodes) mapped[n.id] = value;
  }
  if (inputs.prompt !== undefined) {
    let target: string;
    if (inputs.promptNode) {
      const named = doc.nodes.find((n) => n.id === inputs.promptNode);
      if (!named) throw new RunInputError(`the prompt is addressed to node '${inputs.promptNode}', which is not in the graph`);
      if (named.type !== 'io.text') {
        throw new RunInputError(`the prompt is addressed to node '${named.id}', which is a ${named.type}, not a Text (io.text) node`);
      }
      target = named.id;
    } else {
      const first = doc.nodes.find((n) => n.type === 'io.text');
      if (!first) throw new RunInputError(`a prompt was given, but the graph has no Text (io.text) node to take it`);
      target = first.id;
    }
    mapped[target] = { ...mapped[target], text: inputs.prompt };
  }
  return mapped;
}

// ---------------------------------------------------------------------------------------------------------------
// Results: what reaches the output nodes

export interface RunOutputValue {
  node: string;
  text?: string;
  imageDataUrl?: string;
}

function valueInto(doc: GraphDocument, result: RunResult, nodeId: string, port: string): Value | undefined {
  const edge = doc.edges.find((e) => e.to.node === nodeId && e.to.port === port);
  return edge ? result.outputs[edge.from.node]?.[edge.from.port] : undefined;
}

/**
 * Text and image results, by output node: what arrives at each Text output / Image output node. A graph without
 * output nodes reports the text ports of the nodes that ran last (its sinks).
 */
export async function collectResults(doc: GraphDocument, result: RunResult): Promise<RunOutputValue[]> {
  const ran = new Set([...result.computed, ...result.cached]);
  const out: RunOutputValue[] = [];
  for (const node of doc.nodes) {
    if (!ran.has(node.id)) continue;
    if (node.type === 'io.text_output') {
      const v = valueInto(doc, result, node.id, 'text');
      if (typeof v === 'string') out.push({ node: node.id, text: v });
    } else if (node.type === 'io.image_output') {
      const v = valueInto(doc, result, node.id, 'image');
      if (v && typeof v !== 'string') {
        const { range } = imageOutputParams.parse(node.params);
        const [png] = await imagesToPng(v, range, `node '${node.id}' input 'image'`);
        out.push({ node: node.id, imageDataUrl: `data:image/png;base64,${png.toString('base64')}` });
      }
    }
  }
  if (out.length === 0) {
    const fed = new Set(doc.edges.map((e) => e.from.node));
    for (const id of ran) {
      if (fed.has(id)) continue;
      for (const [, v] of Object.entries(result.outputs[id] ?? {})) if (typeof v === 'string') out.push({ node: id, text: v });
    }
  }
  return out;
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
      onEvent: (e) => {
        switch (e.type) {
          case 'started': return send({ type: 'started', node: e.node, nodeType: e.nodeType });
          case 'progress': return send({ type: 'progress', node: e.node, done: e.step, total: e.total, message: e.detail });
          case 'computed': return send({ type: 'computed', node: e.node, ms: e.ms });
          case 'cached': return send({ type: 'cached', node: e.node });
          case 'error': return send({ type: 'error', node: e.node, message: e.message });
        }
      },
    });
    for (const r of await collectResults(doc, result)) send({ type: 'result', ...r });
    send({ type: 'done', computed: result.computed, cached: result.cached, totalMs: result.totalMs });
  } catch (e) {
    if (e instanceof RunCancelled || signal.aborted) return void send({ type: 'cancelled' });
    const message = e instanceof Error ? e.message : String(e);
    // Validation failures name a node but never reached it: mark it, then close the run.
    if (e instanceof RunError && e.nodeId && e.diagnostics.length) send({ type: 'error', node: e.nodeId, message });
    send({ type: 'error', message });
  }
}
