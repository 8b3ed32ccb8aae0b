// Constant folding of shape subgraphs: values the shape evaluator knows exactly (integer/bool tensors computed from
// constants and from the shapes of values with known dims) become int64/bool initializers, Constant nodes become
// initializers, and whatever is then unused is dropped. Only exact integer arithmetic is folded, so numerics are
// unchanged. The folded model is specialised to the given input shapes, which it records on its inputs.

import { type Dim, type Graph, type Model, type Node, type Tensor, OnnxError, tensorFromNumbers } from './ir.js';
import { type KnownValue, analyzeShapes, constantTensor, isIntegerDtype } from './shapes.js';

export function foldConstants(model: Model, inputShapes?: Record<string, Dim[]>): Model {
  const { info, values } = analyzeShapes(model, inputShapes);
  const g = model.graph;
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const initializers = new Map(g.initializers);
  const nodes: Node[] = [];

  for (const node of g.nodes) {
    // Graph outputs stay produced by a node: an initializer cannot portably be a graph output.
    const feedsOutput = node.outputs.some((o) => graphOutputs.has(o));
    if (!feedsOutput && node.domain === '' && node.opType === 'Constant') {
      const t = constantTensor(node);
      if (t && node.outputs[0]) {
        initializers.set(node.outputs[0], t);
        continue;
      }
    }
    const folded = feedsOutput ? undefined : foldOutputs(node, values, info);
    if (folded) {
      for (const [name, t] of folded) initializers.set(name, t);
      continue;
    }
    nodes.push(node);
  }

  const graph: Graph = {
    name: g.name,
    nodes,
    inputs: g.inputs.map((vi) => ({ ...vi, shape: inputShapes?.[vi.name] ? [...inputShapes[vi.name]] : vi.shape })),
    // With new input shapes the file's own annotations may be stale; the inferred ones are not.
    outputs: g.outputs.map((vi) => (inputShapes ? { ...vi, shape: info.get(vi.name)?.shape ?? null } : { ...vi })),
    initializers,
    valueInfo: inputShapes ? new Map() : new Map(g.valueInfo),
  };
  pruneUnused(graph);
  return { ...model, opsets: { ...model.opsets }, metadata: { ...model.metadata }, graph };
}

/** The initializers that replace a node, when every one of its outputs has a known, exact integer value. */
function foldOutputs(
  node: Node,
  values: Map<string, KnownValue>,
  info: ReturnType<typeof analyzeShapes>['info'],
): Array<[string, Tensor]> | undefined {
  if (node.outputs.length === 0) return undefined;
  const out: Array<[string, Tensor]> = [];
  for (const name of node.outputs) {
    if (!name) continue;
    const v = values.get(name);
    const vi = info.get(name);
    if (!v || !vi || !isIntegerDtype(vi.dtype)) return undefined;
    // Values beyond 2^53 lost precision in the evaluator (e.g. INT64_MAX slice ends); leave those to the runtime.
    if (!v.data.every((d): d is number => typeof d === 'number' && Number.isSafeInteger(d))) return undefined;
    out.push([name, tensorFromNumbers(vi.dtype, v.dims, v.data as number[])]);
  }
  return out;
}

/** Names read anywhere in a graph, including by nested subgraphs (which may read outer-scope values). */
function namesRead(nodes: Node[], into: Set<string>): void {
  for (const n of nodes) {
    for (const i of n.inputs) if (i) into.add(i);
    for (const a of Object.values(n.attrs)) {
      if (a.type === 'graph') {
        namesRead(a.value.nodes, into);
        for (const o of a.value.outputs) into.add(o.name);
      } else if (a.type === 'graphs') {
        for (const sg of a.value) {
          namesRead(sg.nodes, into);
          for (const o of sg.outputs) into.add(o.name);
        }
      }
    }
  }
}

/** Drops nodes none of whose outputs are used, then initializers and annotations nothing refers to. */
export function pruneUnused(graph: Graph): void {
  const outputs = new Set(graph.outputs.map((o) => o.name));
  for (;;) {
    const used = new Set(outputs);
    namesRead(graph.nodes, used);
    const kept = graph.nodes.filter((n) => n.outputs.some((o) => o && used.has(o)));
    if (kept.length === graph.nodes.length) {
      for (const name of [...graph.initializers.keys()]) if (!used.has(name)) graph.initializers.delete(name);
      const live = new Set([...used, ...graph.nodes.flatMap((n) => n.outputs)]);
      for (const name of [...graph.valueInfo.keys()]) if (!live.has(name)) graph.valueInfo.delete(name);
      for (const o of outputs) {
        const produced = graph.nodes.some((n) => n.outputs.includes(o)) || graph.initializers.has(o) || graph.inputs.some((i) => i.name === o);
        if (!produced) throw new OnnxError(`graph output '${o}' is produced by nothing after folding`);
      }
      return;
    }
    graph.nodes = kept;
  }
}
