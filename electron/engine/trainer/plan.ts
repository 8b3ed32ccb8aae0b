// Training plan: which nodes of a graph document train, which run once per sample as a frozen prefix, and which
// host-side values (pixels, token ids) the trainer must produce for each sample.
//
// trainable = unfrozen ONNX nodes with weights (an Embed tokens node follows the decoder whose table it shares) +
// nodes carrying adapters. The training model fuses every needed ONNX node that has a trainable node among its
// ancestors-or-self; the other needed ONNX nodes form the frozen prefix, computed once per sample and cached.

import type { Catalog } from '../../nodes/catalog.js';
import type { NodeTypeDef } from '../../nodes/types.js';
import { type DocNode, type GraphDocument, weightOwnerOf } from '../document.js';

export class TrainError extends Error {
  override name = 'TrainError';
}

/** A value a host node (image loader, tokenizer) hands to an ONNX node: the trainer produces it per sample. */
export interface DataPort {
  /** `${node}.${port}`: the fused models' input name for it. */
  name: string;
  node: string;
  port: string;
  nodeType: string;
}

export interface TrainPlan {
  doc: GraphDocument;
  /** Needed ONNX nodes whose own weights (or adapters) train. */
  trainable: string[];
  /** ONNX nodes of the training model, in document order. */
  trainNodes: string[];
  /** Frozen ONNX nodes upstream of the training model (empty when the prefix cache is off). */
  prefixNodes: string[];
  /** Host values read by the ONNX nodes (prefix or training model). */
  dataPorts: DataPort[];
}

export interface PlanOptions {
  /** Nodes whose outputs the loss reads. */
  lossNodes: string[];
  /** Compute frozen upstream nodes once per sample (default true); false fuses them into the training model. */
  prefixCache?: boolean;
}

export function defOf(doc: GraphDocument, catalog: Catalog, id: string): NodeTypeDef {
  const node = doc.nodes.find((n) => n.id === id);
  if (!node) throw new TrainError(`there is no node '${id}' in the graph`);
  const def = catalog.lookup(node.type);
  if (!def) throw new TrainError(`node '${id}': unknown node type '${node.type}'`);
  return def;
}

export function isOnnxNode(doc: GraphDocument, catalog: Catalog, id: string): boolean {
  return defOf(doc, catalog, id).build !== undefined;
}

export function ancestorsOf(doc: GraphDocument, ids: string[]): Set<string> {
  const seen = new Set<string>();
  const stack = [...ids];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const e of doc.edges) if (e.to.node === id) stack.push(e.from.node);
  }
  return seen;
}

/** The decoder whose word embedding an Embed tokens node shares (as RunPlan.weightOwner), or the node itself. */
export function weightOwner(doc: GraphDocument, id: string): string {
  return weightOwnerOf(doc, id);
}

/** Does this decoder keep the word embedding inside (tied head: GPT-2, OPT)? LLaMA's is untied. */
function decoderTiesEmbedding(node: DocNode): boolean {
  const flavour = (node.params as Record<string, unknown>).flavour;
  return flavour !== 'llama';
}

export function nodeTrains(doc: GraphDocument, catalog: Catalog, id: string): boolean {
  const node = doc.nodes.find((n) => n.id === id)!;
  if (!isOnnxNode(doc, catalog, id)) return false;
  return node.adapters.length > 0 || nodeTrainsItself(doc, catalog, id);
}

/** Do the node's own weights train (not counting adapters)? */
export function nodeTrainsItself(doc: GraphDocument, catalog: Catalog, id: string): boolean {
  const node = doc.nodes.find((n) => n.id === id)!;
  if (!isOnnxNode(doc, catalog, id)) return false;
  if (node.type === 'llm.embed_tokens') {
    const owner = weightOwner(doc, id);
    if (owner === id) return !node.frozen;
    const decoder = doc.nodes.find((n) => n.id === owner)!;
    // Tied head (GPT-2, OPT): the table lives in the decoder and trains with it. Untied (LLaMA): the table is this
    // node's own, so its own freeze decides (and training writes it to this node's weights file).
    return decoderTiesEmbedding(decoder) ? !decoder.frozen : !node.frozen;
  }
  return !node.frozen;
}

export function planTraining(doc: GraphDocument, catalog: Catalog, opts: PlanOptions): TrainPlan {
  for (const id of opts.lossNodes) defOf(doc, catalog, id);
  const needed = ancestorsOf(doc, opts.lossNodes);
  const order = doc.nodes.map((n) => n.id).filter((id) => needed.has(id));
  const onnx = order.filter((id) => isOnnxNode(doc, catalog, id));
  const trainable = onnx.filter((id) => nodeTrains(doc, catalog, id));
  if (trainable.length === 0) {
    throw new TrainError(
      `nothing to train: every node on the way to the loss (${onnx.join(', ')}) is frozen; unfreeze a node or add an adapter`,
    );
  }
  const downstreamOfTrainable = new Set<string>();
  for (const id of onnx) {
    const anc = ancestorsOf(doc, [id]);
    if (trainable.some((t) => anc.has(t))) downstreamOfTrainable.add(id);
  }
  const prefixCache = opts.prefixCache !== false;
  const trainNodes = onnx.filter((id) => !prefixCache || downstreamOfTrainable.has(id));
  const prefixNodes = onnx.filter((id) => !trainNodes.includes(id));
  const onnxSet = new Set(onnx);
  const dataPorts: DataPort[] = [];
  for (const e of doc.edges) {
    if (!onnxSet.has(e.to.node) || onnxSet.has(e.from.node) || !needed.has(e.from.node)) continue;
    const name = `${e.from.node}.${e.from.port}`;
    if (dataPorts.some((d) => d.name === name)) continue;
    const nodeType = doc.nodes.find((n) => n.id === e.from.node)!.type;
    dataPorts.push({ name, node: e.from.node, port: e.from.port, nodeType });
  }
  return { doc, trainable, trainNodes, prefixNodes, dataPorts };
}
