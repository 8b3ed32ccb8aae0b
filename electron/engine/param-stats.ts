// Parameter statistics of a graph: per node its parameter count, trainable count, stored bytes and bits per
// parameter, frozen flag and adapters; then totals with the trainable share (as PEFT's print_trainable_parameters).
// Counts come from the built fragments (Executor.fragmentOf, cached by content key), so they are exactly what runs
// and trains. `vlmc inspect` prints them; the host shows them on the canvas.

import { type Tensor, tensorSize } from '../onnx/ir.js';
import { applyAdapters } from '../nodes/adapters/index.js';
import { NF4_SUFFIX, bitsPerParameter } from '../nodes/adapters/nf4.js';
import type { MetaBuildContext } from '../nodes/blocks.js';
import { WORD_EMBEDDING } from '../nodes/llms.js';
import type { NodeTypeDef, OnnxFragment } from '../nodes/types.js';
import type { GraphDocument } from './document.js';
import { type Executor, RunPlan } from './executor.js';
import { hashKey, nodeSeed } from './keys.js';
import { propagateShapes, resolveNodes } from './widths.js';

export interface NodeStats {
  id: string;
  nodeType: string;
  /** False for host-side nodes (no ONNX weights). */
  onnx: boolean;
  frozen: boolean;
  /** Base weights of the node (a shared tensor is counted for its owner only: see sharedWith). */
  params: number;
  /** Weights its adapters add (always trainable). */
  adapterParams: number;
  /** Unfrozen base weights plus adapter weights. */
  trainable: number;
  /** Bytes the weights take as stored (NF4 base weights under QLoRA, float32 otherwise). */
  bytes: number;
  /** Stored bits per base parameter (32 for float32, ≈4.127 for NF4 with double quantisation); null without weights. */
  bitsPerParam: number | null;
  adapters: Array<{ id: string; method: string }>;
  /** The node whose weights it shares (an Embed tokens node and its decoder's tied embedding). */
  sharedWith?: string;
  /**
   * Counted from a describe-only build (weight shapes without data): the node initialises its weights randomly and
   * they would take more than DESCRIBE_ONLY_BYTES (a real-size preset without a checkpoint). Bytes are as float32.
   */
  describeOnly?: boolean;
  /** Only with `tolerateErrors`: why the node could not be counted (its counts are then 0 and left out of the total). */
  error?: string;
  /** Where its weights come from: a safetensors file, or a Hugging Face folder and the architecture part it holds. */
  weightsFrom?: string;
  /** Weights initialised from the seed although a weights file is loaded (the node's freshWeights). */
  freshWeights?: string[];
}

/** "hf:llama decoder ← /models/llama" or the weights file's path, for inspect and the node. */
function weightsFrom(node: GraphDocument['nodes'][number]): string | undefined {
  const w = node.weights;
  if (!w) return undefined;
  return w.hf ? `hf:${w.hf.architecture} ${w.hf.part} ← ${w.path}` : w.path;
}

export interface InspectReport {
  graph: string;
  nodes: NodeStats[];
  total: { params: number; trainable: number; trainablePercent: number; bytes: number };
}

export interface StatsOptions {
  /** Record a node that cannot be built in its `error` instead of failing the whole report (the canvas). */
  tolerateErrors?: boolean;
}

/** Randomly initialised weights above this size are counted from a describe-only build, never allocated. */
export const DESCRIBE_ONLY_BYTES = 256 * 2 ** 20;

interface Described {
  fragment: OnnxFragment;
  adapterWeights: Set<string>;
}

/**
 * By build identity: the describe-only build of a node too large to allocate, or null for a node the executor builds.
 * The decision (and a describe-only build) is made once per distinct node build.
 */
const describedByBuild = new Map<string, Described | null>();
const DESCRIBED_ENTRIES = 256;

function storedBits(t: Tensor): number {
  return ArrayBuffer.isView(t.data) ? t.data.byteLength * 8 : 0;
}

/** Base weights stored NF4 (QLoRA): their parameter count and stored bits. */
function nf4Weights(fragment: OnnxFragment): { params: number; bits: number } {
  let params = 0;
  for (const name of fragment.graph.initializers.keys()) {
    if (!name.endsWith(NF4_SUFFIX)) continue;
    const shape = fragment.graph.valueInfo.get(name.slice(0, -NF4_SUFFIX.length))?.shape;
    if (shape?.every((d) => typeof d === 'number')) params += tensorSize(shape as number[]);
  }
  return { params, bits: params ? params * bitsPerParameter(fragment) : 0 };
}

function weightBytes(fragment: OnnxFragment): number {
  let n = 0;
  for (const w of fragment.weights) {
    const t = fragment.graph.initializers.get(w);
    if (t) n += tensorSize(t.dims) * 4;
  }
  return n;
}

/**
 * A node's fragment for counting: the executor's (cached) build, or a describe-only build when its weights are
 * seeded and too large to allocate just to count them.
 */
async function countedFragment(
  executor: Executor,
  plan: RunPlan,
  doc: GraphDocument,
  baseDir: string,
  id: string,
): Promise<Described & { describeOnly: boolean; fromShapes: boolean }> {
  const def = plan.def(id);
  if (!def.build) throw new Error(`node '${id}' has no ONNX builder`);
  const weights = plan.node(plan.weightSource(id)).weights;
  // A model folder's weights are counted from their shapes (the import checked them against the config): counting
  // must not read gigabytes the user has not asked to load yet (the Models panel estimates that memory first).
  if (weights === undefined || weights.hf) {
    const key = hashKey(plan.buildIdentity(id));
    let described = describedByBuild.get(key);
    if (described === undefined) {
      described = describe(plan, id, def.build, weights?.hf !== undefined);
      if (describedByBuild.size >= DESCRIBED_ENTRIES) describedByBuild.delete(describedByBuild.keys().next().value as string);
      describedByBuild.set(key, described);
    }
    // Folder weights exist (they are just not read here), so they are not 'describe-only'.
    if (described) return { ...described, describeOnly: !weights?.hf, fromShapes: true };
  }
  const fragment = await executor.fragmentOf(doc, baseDir, id);
  const adapterWeights = new Set((await executor.adaptersOf(doc, baseDir, id)).trainable);
  return { fragment, adapterWeights, describeOnly: false, fromShapes: false };
}

/**
 * A describe-only build (with its adapters) when the node's seeded weights exceed DESCRIBE_ONLY_BYTES (or `always`,
 * for weights in a model folder), else null.
 */
function describe(plan: RunPlan, id: string, build: NonNullable<NodeTypeDef['build']>, always = false): Described | null {
  const seed = nodeSeed(plan.doc.seed ?? 0, plan.weightOwner(id));
  const ctx: MetaBuildContext = { nodeId: id, seed, inputShapes: plan.shapes(id).inputs, meta: true };
  const fragment = build(plan.params(id), ctx);
  if (!always && weightBytes(fragment) <= DESCRIBE_ONLY_BYTES) return null;
  const specs = plan.node(id).adapters;
  if (specs.length === 0) return { fragment, adapterWeights: new Set() };
  const applied = applyAdapters(fragment, specs, seed, { what: `node '${id}'` });
  return { fragment: applied.fragment, adapterWeights: new Set(applied.trainable) };
}

/** Whether the weight owner's fragment holds the tied embedding (then it is counted there, not here). */
async function sharesEmbedding(executor: Executor, plan: RunPlan, doc: GraphDocument, baseDir: string, id: string): Promise<string | undefined> {
  const owner = plan.weightOwner(id);
  if (owner === id) return undefined;
  const { fragment } = await countedFragment(executor, plan, doc, baseDir, owner);
  return fragment.graph.initializers.has(WORD_EMBEDDING) ? owner : undefined;
}

async function countNode(executor: Executor, plan: RunPlan, doc: GraphDocument, baseDir: string, stats: NodeStats): Promise<void> {
  const { fragment, adapterWeights, describeOnly, fromShapes } = await countedFragment(executor, plan, doc, baseDir, stats.id);
  const owner = await sharesEmbedding(executor, plan, doc, baseDir, stats.id);
  if (owner) stats.sharedWith = owner;
  if (describeOnly) stats.describeOnly = true;
  let baseBits = 0;
  let adapterBits = 0;
  for (const w of fragment.weights) {
    const t = fragment.graph.initializers.get(w);
    if (!t || (owner && w === WORD_EMBEDDING)) continue;
    // A describe-only build has empty buffers: its weights are stored as float32.
    const bits = fromShapes ? tensorSize(t.dims) * 32 : storedBits(t);
    if (adapterWeights.has(w)) {
      stats.adapterParams += tensorSize(t.dims);
      adapterBits += bits;
    } else {
      stats.params += tensorSize(t.dims);
      baseBits += bits;
    }
  }
  const nf4 = nf4Weights(fragment);
  stats.params += nf4.params;
  baseBits += nf4.bits;
  stats.trainable = (stats.frozen ? 0 : stats.params) + stats.adapterParams;
  stats.bytes = Math.round((baseBits + adapterBits) / 8);
  stats.bitsPerParam = stats.params ? baseBits / stats.params : null;
}

/**
 * The plan every node is counted against. With `tolerateErrors`, nodes of unknown type, with invalid params or with
 * shape problems are left out (each gets its error) so the others can still be counted.
 */
function planFor(executor: Executor, doc: GraphDocument, baseDir: string, opts: StatsOptions): { plan: RunPlan | null; broken: Map<string, string>; failure?: string } {
  const broken = new Map<string, string>();
  const planOf = (d: GraphDocument) => new RunPlan(d, executor.catalog, { baseDir, targets: d.nodes.map((n) => n.id) });
  if (!opts.tolerateErrors) return { plan: planOf(doc), broken };
  let kept = doc;
  let failure = '';
  // Each round drops the nodes the shape pass blames; what they fed may then be blamed in the next round.
  for (let round = 0; round < 8; round++) {
    try {
      return { plan: planOf(kept), broken };
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
    const resolved = resolveNodes(kept, executor.catalog);
    for (const n of kept.nodes) {
      if (!resolved.get(n.id)?.paramsValid) broken.set(n.id, `node '${n.id}' (${n.type}): unknown type or invalid params`);
    }
    const pass = propagateShapes(kept, executor.catalog, resolved);
    for (const p of pass.problems) if (p.nodeId && !broken.has(p.nodeId)) broken.set(p.nodeId, p.message);
    for (const id of pass.cyclic) if (!broken.has(id)) broken.set(id, `node '${id}' is on a cycle`);
    const nodes = kept.nodes.filter((n) => !broken.has(n.id));
    if (nodes.length === kept.nodes.length) break;
    kept = { ...kept, nodes, edges: kept.edges.filter((e) => !broken.has(e.from.node) && !broken.has(e.to.node)) };
  }
  return { plan: null, broken, failure };
}

/** Per-node and total parameter statistics of a graph, from the built (and adapted) fragments. */
export async function parameterStats(executor: Executor, doc: GraphDocument, baseDir: string, opts: StatsOptions = {}): Promise<InspectReport> {
  const { plan, broken, failure } = planFor(executor, doc, baseDir, opts);
  const nodes: NodeStats[] = [];
  for (const node of doc.nodes) {
    const stats: NodeStats = {
      id: node.id,
      nodeType: node.type,
      onnx: false,
      frozen: node.frozen,
      params: 0,
      adapterParams: 0,
      trainable: 0,
      bytes: 0,
      bitsPerParam: null,
      adapters: node.adapters.map((a) => ({ id: a.id, method: a.method })),
      ...(node.weights ? { weightsFrom: weightsFrom(node) } : {}),
      ...(node.freshWeights?.length ? { freshWeights: [...node.freshWeights] } : {}),
    };
    nodes.push(stats);
    const problem = broken.get(node.id) ?? failure;
    if (!plan || problem) {
      stats.error = problem ?? 'the graph cannot be resolved';
      continue;
    }
    const def = plan.def(node.id);
    stats.onnx = Boolean(def.build);
    if (!def.build) continue;
    if (!opts.tolerateErrors) {
      await countNode(executor, plan, plan.doc, baseDir, stats);
      continue;
    }
    try {
      await countNode(executor, plan, plan.doc, baseDir, stats);
    } catch (e) {
      Object.assign(stats, { params: 0, adapterParams: 0, trainable: 0, bytes: 0, bitsPerParam: null, error: e instanceof Error ? e.message : String(e) });
      delete stats.sharedWith;
      delete stats.describeOnly;
    }
  }
  const params = nodes.reduce((n, s) => n + s.params + s.adapterParams, 0);
  const trainable = nodes.reduce((n, s) => n + s.trainable, 0);
  const bytes = nodes.reduce((n, s) => n + s.bytes, 0);
  return { graph: doc.name, nodes, total: { params, trainable, trainablePercent: params ? (100 * trainable) / params : 0, bytes } };
}
