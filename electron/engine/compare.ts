// Compare: the graph as it is and one variant per candidate type at one node (a projector swap, typically), all run
// on the same inputs by ONE executor, so everything upstream of the swapped node is computed once and then served
// from the content-addressed cache. Per variant: the answer, the latency of the nodes that ran for it, and the
// parameter counts of its built fragments.

import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import { tensorSize } from '../onnx/ir.js';
import { paramShape, portsOf } from '../nodes/catalog.js';
import type { NodeTypeDef, PortSpec } from '../nodes/types.js';
import { type DocEdge, type DocNode, type GraphDocument, graphDocumentFromJson } from './document.js';
import { type CompareEvent, describeNodeEvent, type NodeEvent, nodeEvent } from './messages.js';
import { Executor, RunCancelled, RunError, type RunInput, RunPlan } from './executor.js';
import { hashKey } from './keys.js';
import { collectOutputs, mapRunInputs, type RunImageInput, type RunJobInputs, writePngs } from './run-io.js';
import { type NodeShapes, lastDim, resolveShapes } from './widths.js';

export class CompareError extends Error {
  override name = 'CompareError';
}

/** A candidate for the compared node: a type id or alias (default params), or a type with params. */
export type Candidate = string | { type: string; params?: Record<string, unknown> };

export interface CompareOptions {
  /** Folder relative paths in the document resolve against. */
  baseDir: string;
  /** The node to replace. */
  node: string;
  /** Candidate types, in order (variant 1, 2, …); variant 0 is the graph as it is. */
  with: Candidate[];
  /** Run-time data by node id (as Executor.run; engine/run-io.ts mapRunInputs). Images in `images` override the io.image inputs. */
  inputs?: Record<string, RunInput>;
  /** An image set (files, or bytes that came over the contract): every variant runs on each image, which goes to every io.image node. */
  images?: Array<string | RunImageInput>;
  /** Where generated images are written (default: a folder under the OS temp dir). */
  outDir?: string;
  signal?: AbortSignal;
  onEvent?: (e: CompareProgress) => void;
  /** Share an executor (and its cache) with the caller; default: a fresh one, disposed at the end. */
  executor?: Executor;
}

export type CompareProgress =
  | { type: 'variant-start'; variant: number; nodeType: string; image?: string }
  | { type: 'node'; variant: number; image?: string; event: NodeEvent }
  | { type: 'variant'; result: VariantResult };

export interface VariantOutput {
  /** Output node id (or the producing node when the graph has no output node). */
  node: string;
  text?: string;
  /** PNG written for an image output. */
  imagePath?: string;
}

export interface VariantResult {
  /** 0 = the graph as it is; 1… = the candidates in order. */
  variant: number;
  nodeType: string;
  /** Index into `images` and its name, when an image set was given. */
  image?: number;
  imageName?: string;
  outputs: VariantOutput[];
  /** The first text output (or image path): what a side-by-side table shows. */
  output: string;
  /** Milliseconds of the nodes that ran for this variant (cached nodes cost nothing; sessions are built beforehand). */
  latencyMs: number;
  wallMs: number;
  totalParams: number;
  trainableParams: number;
  /** Parameters of the compared node alone. */
  nodeParams: number;
  computed: string[];
  cached: string[];
  timings: Record<string, number>;
  notes: string[];
}

export interface CompareResult {
  node: string;
  variants: VariantResult[];
  /** Nodes computed in at least one variant, with how many times (upstream nodes: once per image). */
  computeCounts: Record<string, number>;
  totalMs: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Building variants

/** Ports of `def` with default (or given) params. */
function portsFor(def: NodeTypeDef, params: Record<string, unknown>, nodeId: string): { inputs: PortSpec[]; outputs: PortSpec[] } {
  const parsed = def.params.safeParse(params);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CompareError(`candidate '${def.info.type}' for node '${nodeId}': param ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return portsOf(def, parsed.data);
}

/** The port of the new type an old connection goes to: same name, else the only port of the same kind. */
function matchPort(name: string, oldPorts: PortSpec[], newPorts: PortSpec[]): string | undefined {
  if (newPorts.some((p) => p.name === name)) return name;
  const kind = oldPorts.find((p) => p.name === name)?.kind;
  const sameKind = newPorts.filter((p) => p.kind === kind);
  return kind && sameKind.length === 1 ? sameKind[0].name : undefined;
}

function noPort(what: string, name: string, ports: PortSpec[]): CompareError {
  const names = ports.map((p) => `'${p.name}'`).join(', ') || 'none';
  return new CompareError(`${what} has no port '${name}' (it has ${names}); connect it by hand to compare`);
}

export interface Variant {
  doc: GraphDocument;
  nodeType: string;
  notes: string[];
}

/** The document with node `nodeId` replaced by `candidate`: same id, connections kept by port name, fresh weights. */
export function variantDocument(doc: GraphDocument, nodeId: string, candidate: Candidate, executor: Executor): Variant {
  const old = doc.nodes.find((n) => n.id === nodeId);
  if (!old) throw new CompareError(`there is no node '${nodeId}' in the graph`);
  const typeName = typeof candidate === 'string' ? candidate : candidate.type;
  const params = typeof candidate === 'string' ? {} : (candidate.params ?? {});
  const def = executor.catalog.find(typeName);
  if (!def) {
    const close = executor.catalog.closeMatches(typeName);
    throw new CompareError(`unknown node type '${typeName}'${close.length ? `; did you mean ${close.map((c) => `'${c}'`).join(', ')}?` : ''}`);
  }
  const oldDef = executor.catalog.lookup(old.type);
  if (!oldDef) throw new CompareError(`node '${nodeId}' has an unknown type '${old.type}'`);
  const oldPorts = portsFor(oldDef, old.params, nodeId);
  const newPorts = portsFor(def, params, nodeId);
  const what = `'${def.info.type}' (replacing node '${nodeId}')`;
  const notes: string[] = [];
  const edges: DocEdge[] = [];
  const dropped: DocEdge[] = [];
  let keptInput = false;
  const outputWidths: Array<{ port: string; width: number }> = [];
  const oldShapes = resolvedShapesOf(doc, executor, nodeId);
  for (const e of doc.edges) {
    if (e.to.node === nodeId) {
      const port = matchPort(e.to.port, oldPorts.inputs, newPorts.inputs);
      if (port) {
        keptInput = true;
        edges.push({ from: e.from, to: { node: nodeId, port } });
      } else dropped.push(e);
    } else if (e.from.node === nodeId) {
      const port = matchPort(e.from.port, oldPorts.outputs, newPorts.outputs);
      if (!port) throw noPort(what, e.from.port, newPorts.outputs);
      edges.push({ from: { node: nodeId, port }, to: e.to });
      const produced = lastDim(oldShapes?.outputs[e.from.port]);
      if (produced !== undefined) outputWidths.push({ port, width: produced });
    } else edges.push(e);
  }
  // Extra inputs of the replaced node (InstructBLIP's instruction ids into its Q-Former) are dropped, as long as
  // the main input still arrives; with nothing connected the variant would not be a replacement.
  if (dropped.length && !keptInput) throw noPort(what, dropped[0].to.port, newPorts.inputs);
  for (const e of dropped) notes.push(`the connection ${e.from.node}.${e.from.port} → ${nodeId}.${e.to.port} is left out: ${def.info.type} has no such input`);
  const replaced: DocNode = {
    id: nodeId,
    type: def.info.type,
    typeVersion: def.info.typeVersion,
    params,
    frozen: old.frozen,
    adapters: [],
  };
  const nodes = (n: DocNode) => doc.nodes.map((x) => (x.id === nodeId ? n : x));
  // An 'auto' d_out that nothing downstream fixes (another 'auto' projector follows, as in MiniGPT-4) keeps the
  // width the replaced node produced.
  const widths = new Set(outputWidths.map((o) => o.width));
  if ('d_out' in paramShape(def) && params.d_out === undefined && widths.size === 1) {
    const resolved = resolvedShapesOf({ ...doc, nodes: nodes(replaced), edges }, executor, nodeId);
    if (outputWidths.some((o) => lastDim(resolved?.outputs[o.port]) === undefined)) {
      const [width] = widths;
      replaced.params = { ...params, d_out: width };
      notes.push(`d_out of node '${nodeId}' is set to ${width}, the width '${old.type}' produced (nothing downstream fixes it)`);
    }
  }
  if (def.build) notes.push(`node '${nodeId}' is now ${def.info.type}: its weights are freshly initialised from the graph seed (untrained)`);
  if (old.weights) notes.push(`the weights file '${old.weights.path}' of node '${nodeId}' is not used by this variant`);
  if (old.adapters.length) notes.push(`adapters on node '${nodeId}' (${old.adapters.map((a) => a.id).join(', ')}) are dropped for this variant`);
  return { doc: { ...doc, nodes: nodes(replaced), edges }, nodeType: def.info.type, notes };
}

/** The node's resolved port shapes in `doc`, or undefined when the graph does not resolve. */
function resolvedShapesOf(doc: GraphDocument, executor: Executor, nodeId: string): NodeShapes | undefined {
  try {
    return resolveShapes(doc, executor.catalog).get(nodeId);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parameter counts

export interface ParamCounts {
  total: number;
  trainable: number;
  /** Per ONNX node: its own count (a weight shared with its owner counts once, for the owner). */
  byNode: Record<string, number>;
}

/** Counts the trainable weights of every built fragment; frozen nodes contribute nothing trainable. */
export async function parameterCounts(executor: Executor, doc: GraphDocument, baseDir: string, nodeIds?: string[]): Promise<ParamCounts> {
  const plan = new RunPlan(doc, executor.catalog, { baseDir, targets: nodeIds });
  const seen = new Map<string, { size: number; trainable: boolean }>();
  const byNode: Record<string, number> = {};
  // Owners first, so a shared tensor is counted for the node whose weights file holds it.
  const onnxNodes = plan.order.filter((id) => plan.def(id).build);
  const ordered = [...onnxNodes.filter((id) => plan.weightOwner(id) === id), ...onnxNodes.filter((id) => plan.weightOwner(id) !== id)];
  for (const id of ordered) {
    const fragment = await executor.fragmentOf(doc, baseDir, id);
    const owner = plan.weightOwner(id);
    const frozen = plan.node(id).frozen;
    let own = 0;
    for (const name of fragment.weights) {
      const t = fragment.graph.initializers.get(name);
      if (!t) continue;
      // A tied word embedding is one tensor shared by the embedding node and its decoder.
      const key = `${owner}\u0000${name}`;
      const prev = seen.get(key);
      if (prev) {
        prev.trainable ||= !frozen;
        continue;
      }
      const size = tensorSize(t.dims);
      seen.set(key, { size, trainable: !frozen });
      own += size;
    }
    byNode[id] = own;
  }
  let total = 0;
  let trainable = 0;
  for (const w of seen.values()) {
    total += w.size;
    if (w.trainable) trainable += w.size;
  }
  return { total, trainable, byNode };
}

// ---------------------------------------------------------------------------------------------------------------
// Running

function asImage(i: string | RunImageInput): RunImageInput {
  return typeof i === 'string' ? { name: basename(i), path: i } : i;
}

function describeOutput(outputs: VariantOutput[]): string {
  const first = outputs[0];
  if (!first) return '';
  return first.text ?? first.imagePath ?? '';
}

/** Runs the original graph and one variant per candidate on the same inputs (and on each image of `images`). */
export async function compareVariants(doc: GraphDocument, opts: CompareOptions): Promise<CompareResult> {
  const started = performance.now();
  if (opts.with.length === 0) throw new CompareError('give at least one candidate type to compare with');
  const executor = opts.executor ?? new Executor();
  try {
    const variants: Variant[] = [
      { doc, nodeType: doc.nodes.find((n) => n.id === opts.node)?.type ?? '', notes: [] },
      ...opts.with.map((c) => variantDocument(doc, opts.node, c, executor)),
    ];
    if (!variants[0].nodeType) throw new CompareError(`there is no node '${opts.node}' in the graph`);
    const images = (opts.images ?? []).map(asImage);
    const runs: Array<RunImageInput | undefined> = images.length ? images : [undefined];
    const outDir = opts.outDir ?? join(tmpdir(), 'composer-compare', hashKey({ doc: doc.name, at: Date.now(), pid: process.pid }));
    const counts = new Map<number, ParamCounts>();
    const results: VariantResult[] = [];
    const computeCounts: Record<string, number> = {};
    for (const [imageIndex, image] of runs.entries()) {
      for (const [v, variant] of variants.entries()) {
        if (opts.signal?.aborted) throw new RunCancelled('compare cancelled');
        const imageName = image?.name;
        opts.onEvent?.({ type: 'variant-start', variant: v, nodeType: variant.nodeType, image: imageName });
        const inputs: Record<string, RunInput> = { ...(opts.inputs ?? {}), ...(image ? mapRunInputs(variant.doc, { image }, { imageOptional: true }) : {}) };
        // Building fragments and sessions first keeps model construction out of the measured latency.
        let pc = counts.get(v);
        if (!pc) counts.set(v, (pc = await parameterCounts(executor, variant.doc, opts.baseDir)));
        const t0 = performance.now();
        let res;
        try {
          res = await executor.run(variant.doc, {
            baseDir: opts.baseDir,
            inputs,
            signal: opts.signal,
            onEvent: (event) => opts.onEvent?.({ type: 'node', variant: v, image: imageName, event: nodeEvent(event) }),
          });
        } catch (e) {
          if (e instanceof RunError && v > 0) {
            throw new RunError(`variant ${v} (${variant.nodeType} at node '${opts.node}'): ${e.message}`, e.nodeId, e.diagnostics);
          }
          throw e;
        }
        const wallMs = performance.now() - t0;
        for (const id of res.computed) computeCounts[id] = (computeCounts[id] ?? 0) + 1;
        const outputs = (await collectOutputs(variant.doc, res)).flatMap(({ node, text, pngs }): VariantOutput[] =>
          pngs
            ? writePngs(pngs, (i) => join(outDir, `variant${v}${image ? `-image${imageIndex}` : ''}-${node}${i ? `-${i}` : ''}.png`)).map((imagePath) => ({ node, imagePath }))
            : [{ node, text }],
        );
        const result: VariantResult = {
          variant: v,
          nodeType: variant.nodeType,
          ...(image ? { image: imageIndex, imageName } : {}),
          outputs,
          output: describeOutput(outputs),
          latencyMs: Object.values(res.timings).reduce((a, b) => a + b, 0),
          wallMs,
          totalParams: pc.total,
          trainableParams: pc.trainable,
          nodeParams: pc.byNode[opts.node] ?? 0,
          computed: res.computed,
          cached: res.cached,
          timings: res.timings,
          notes: [...variant.notes, ...shapeNote(executor, variant, opts)],
        };
        results.push(result);
        opts.onEvent?.({ type: 'variant', result });
      }
    }
    return { node: opts.node, variants: results, computeCounts, totalMs: performance.now() - started };
  } finally {
    if (!opts.executor) await executor.dispose();
  }
}

/** For a replaced node: the widths its 'auto' params resolved to, read from its resolved port shapes. */
function shapeNote(executor: Executor, variant: Variant, opts: CompareOptions): string[] {
  if (!variant.notes.length) return [];
  try {
    const plan = new RunPlan(variant.doc, executor.catalog, { baseDir: opts.baseDir, targets: [opts.node] });
    const s = plan.shapes(opts.node);
    const fmt = (r: Record<string, Array<string | number>>) =>
      Object.entries(r)
        .filter(([k]) => !k.startsWith('out:'))
        .map(([k, v]) => `${k} [${v.join(',')}]`)
        .join(', ');
    return [`node '${opts.node}' resolved its widths from its neighbours: ${fmt(s.inputs)} → ${fmt(s.outputs)}`];
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The engine jobs `compare.start` / `compare.cancel` (electron/host/engine-jobs.ts): `compareGraph(args, emit)`, `cancelCompare({id})`

/** What the worker passes (the host checked every path against its file policy). */
export interface CompareJobArgs {
  id: string;
  document: unknown;
  nodeId: string;
  candidates: Array<{ type: string; params?: Record<string, unknown> }>;
  inputs?: RunJobInputs;
  images?: RunImageInput[];
  baseDir: string;
  /** Compare on a dataset (the contract's compareDatasetSchema): electron/engine/eval/compare-job.ts runs it. */
  dataset?: CompareDatasetArgs;
}

export interface CompareDatasetArgs {
  name: string;
  task?: 'caption' | 'vqa' | 'retrieval' | 'zero-shot' | 'generation';
  split?: 'eval' | 'train' | 'all';
  limit: number;
  trainSteps?: number;
  recipe?: string;
  reinit: boolean;
}

/** The contract's `compare.event` (electron/engine/messages.ts). */
export type CompareJobEvent = CompareEvent;

const running = new Map<string, AbortController>();

function pngDataUrl(path: string | undefined): string | undefined {
  return path ? `data:image/png;base64,${readFileSync(path).toString('base64')}` : undefined;
}

/** Runs a comparison for the host and reports it through compare.event messages. */
export async function compareGraph(args: CompareJobArgs, emit: (e: CompareJobEvent) => void): Promise<void> {
  const doc = graphDocumentFromJson(args.document, 'the compared graph');
  const controller = new AbortController();
  running.set(args.id, controller);
  const base = { channel: 'compare.event' as const, id: args.id };
  const imageCount = Math.max(1, args.images?.length ?? 0);
  const total = (args.candidates.length + 1) * imageCount;
  let done = 0;
  try {
    if (args.dataset) {
      // Loaded on demand: the dataset job builds on this module (variants, parameter counts).
      const { compareDatasetJob } = await import('./eval/compare-job.js');
      await compareDatasetJob(doc, { ...args, dataset: args.dataset }, emit, controller.signal);
      return;
    }
    emit({ ...base, type: 'started', total });
    await compareVariants(doc, {
      baseDir: args.baseDir,
      node: args.nodeId,
      with: args.candidates,
      // The app sends its run image to every graph, one without an Image node included.
      inputs: mapRunInputs(doc, args.inputs, { imageOptional: true }),
      images: args.images,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'node' && (e.event.type === 'cached' || e.event.type === 'computed')) {
          emit({ ...base, type: 'progress', variant: e.variant, done, total, message: describeNodeEvent(e.event) });
        } else if (e.type === 'variant') {
          const r = e.result;
          done++;
          emit({
            ...base,
            type: 'result',
            variant: r.variant,
            nodeType: r.nodeType,
            ...(r.image !== undefined ? { image: r.image, imageName: r.imageName } : {}),
            text: r.outputs.find((o) => o.text !== undefined)?.text,
            imageDataUrl: pngDataUrl(r.outputs.find((o) => o.imagePath)?.imagePath),
            latencyMs: r.latencyMs,
            totalParams: r.totalParams,
            trainableParams: r.trainableParams,
            nodeParams: r.nodeParams,
            done,
            total,
            message: r.notes.join('\n') || undefined,
          });
        }
      },
    });
    emit({ ...base, type: 'done', done, total });
  } catch (e) {
    if (e instanceof RunCancelled || controller.signal.aborted) emit({ ...base, type: 'cancelled', done, total });
    else emit({ ...base, type: 'error', message: e instanceof Error ? e.message : String(e) });
  } finally {
    running.delete(args.id);
  }
}

export function cancelCompare(args: { id: string }): { cancelled: boolean } {
  const c = running.get(args.id);
  c?.abort();
  return { cancelled: c !== undefined };
}

