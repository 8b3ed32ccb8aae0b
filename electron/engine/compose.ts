// Fused mode: joins the ONNX fragments of several graph nodes into one model. Every name inside a fragment is
// prefixed with its node id; an edge between two fused nodes becomes a direct value; inputs fed from outside the
// fused set become graph inputs named after their source (`source.port`), so a value read twice is fed once.

import { createHash } from 'node:crypto';
import type { Graph, Model, Node, Tensor, ValueInfo } from '../onnx/ir.js';
import { OnnxError } from '../onnx/ir.js';
import type { OnnxFragment } from '../nodes/types.js';
import type { DocEdge } from './document.js';

export interface FusedPart {
  id: string;
  fragment: OnnxFragment;
}

export interface ComposeOptions {
  /** Extra outputs to expose besides those read by nodes outside the set (node id → ports). */
  outputs?: Array<{ node: string; port: string }>;
  /** Expose only `outputs` (not every port read from outside the set). */
  onlyRequestedOutputs?: boolean;
  /** Share identical initializers between fragments (e.g. a tied word embedding), default true. */
  dedupe?: boolean;
  graphName?: string;
}

export interface ComposedModel {
  model: Model;
  /** Model input name → the fragment ports it feeds. Inputs from outside use `source.port` names. */
  inputs: Map<string, Array<{ node: string; port: string }>>;
  /** `${node}/${port}` for every exposed output. */
  outputs: Map<string, { node: string; port: string }>;
  /** Initializer names (in the composed model) of each node's weights. */
  weights: Map<string, string[]>;
}

export const fusedName = (node: string, name: string) => `${node}/${name}`;

function renameNode(n: Node, rename: (v: string) => string, prefix: string): Node {
  const attrs: Node['attrs'] = {};
  for (const [k, a] of Object.entries(n.attrs)) {
    // Subgraphs (If / Loop / Scan bodies) read outer values by name: rename them with the same map.
    if (a.type === 'graph') attrs[k] = { type: 'graph', value: renameSubgraph(a.value, rename, prefix) };
    else if (a.type === 'graphs') attrs[k] = { type: 'graphs', value: a.value.map((g) => renameSubgraph(g, rename, prefix)) };
    else attrs[k] = a;
  }
  return {
    ...n,
    name: fusedName(prefix, n.name),
    inputs: n.inputs.map((i) => (i ? rename(i) : '')),
    outputs: n.outputs.map((o) => (o ? rename(o) : '')),
    attrs,
  };
}

function renameSubgraph(g: Graph, rename: (v: string) => string, prefix: string): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => renameNode(n, rename, prefix)),
    inputs: g.inputs.map((v) => ({ ...v, name: rename(v.name) })),
    outputs: g.outputs.map((v) => ({ ...v, name: rename(v.name) })),
    initializers: new Map([...g.initializers].map(([k, t]) => [rename(k), t])),
    valueInfo: new Map([...g.valueInfo].map(([k, v]) => [rename(k), { ...v, name: rename(k) }])),
  };
}

function tensorDigest(t: Tensor): string {
  const h = createHash('sha256');
  h.update(`${t.dtype}|${t.dims.join(',')}|`);
  if (Array.isArray(t.data)) h.update(t.data.join('\u0000'));
  else h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return h.digest('hex');
}

/** Ops whose meaning changed at opset 18 (attribute → input forms), which cannot mix with older fragments. */
const CHANGED_AT_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceL2', 'ReduceProd', 'ReduceSumSquare', 'ReduceLogSumExp', 'ReduceL1', 'Split', 'Pad', 'Resize', 'ScatterND', 'ScatterElements']);

export function composeFragments(parts: FusedPart[], edges: DocEdge[], opts: ComposeOptions = {}): ComposedModel {
  const ids = new Set(parts.map((p) => p.id));
  const opset = Math.max(...parts.map((p) => p.fragment.opset));
  if (opset >= 18) {
    for (const p of parts) {
      if (p.fragment.opset >= 18) continue;
      const old = p.fragment.graph.nodes.find((n) => CHANGED_AT_18.has(n.opType));
      if (old) {
        throw new OnnxError(
          `cannot fuse node '${p.id}' (opset ${p.fragment.opset}, uses ${old.opType}) with opset-${opset} nodes; ` +
            're-export it at opset 18 or newer',
        );
      }
    }
  }
  const graph: Graph = {
    name: opts.graphName ?? 'composed',
    nodes: [],
    inputs: [],
    outputs: [],
    initializers: new Map(),
    valueInfo: new Map(),
  };
  const inputs = new Map<string, Array<{ node: string; port: string }>>();
  const outputs = new Map<string, { node: string; port: string }>();
  const weights = new Map<string, string[]>();
  const byDigest = new Map<string, string>();
  const dedupe = opts.dedupe !== false;

  // Where does each fused input port get its value from?
  const incoming = new Map<string, DocEdge>();
  for (const e of edges) if (ids.has(e.to.node)) incoming.set(`${e.to.node}\u0000${e.to.port}`, e);

  for (const { id, fragment } of parts) {
    const g = fragment.graph;
    const renamed = new Map<string, string>();
    // Initializers first: they may be shared with an identical one already added.
    for (const [name, t] of g.initializers) {
      let target = fusedName(id, name);
      if (dedupe && t.data.length >= 256) {
        const digest = tensorDigest(t);
        const existing = byDigest.get(digest);
        if (existing) target = existing;
        else {
          byDigest.set(digest, target);
          graph.initializers.set(target, t);
        }
      } else {
        graph.initializers.set(target, t);
      }
      renamed.set(name, target);
    }
    weights.set(id, fragment.weights.map((w) => renamed.get(w) ?? fusedName(id, w)));
    for (const inp of g.inputs) {
      const edge = incoming.get(`${id}\u0000${inp.name}`);
      if (edge && ids.has(edge.from.node)) {
        renamed.set(inp.name, fusedName(edge.from.node, edge.from.port));
        continue;
      }
      const external = edge ? `${edge.from.node}.${edge.from.port}` : fusedName(id, inp.name);
      renamed.set(inp.name, external);
      const feeders = inputs.get(external);
      if (feeders) feeders.push({ node: id, port: inp.name });
      else {
        inputs.set(external, [{ node: id, port: inp.name }]);
        graph.inputs.push({ ...inp, name: external });
      }
    }
    // Port outputs keep the `node/port` name so edges between fused nodes can refer to them.
    const rename = (v: string) => renamed.get(v) ?? fusedName(id, v);
    for (const n of g.nodes) graph.nodes.push(renameNode(n, rename, id));
    for (const [name, vi] of g.valueInfo) graph.valueInfo.set(rename(name), { ...vi, name: rename(name) });
  }

  // Outputs: ports read by nodes outside the set, plus the requested ones.
  const wanted: Array<{ node: string; port: string }> = [...(opts.outputs ?? [])];
  if (!opts.onlyRequestedOutputs) {
    for (const e of edges) if (ids.has(e.from.node) && !ids.has(e.to.node)) wanted.push(e.from);
  }
  for (const w of wanted) {
    const part = parts.find((p) => p.id === w.node);
    if (!part) throw new OnnxError(`cannot expose '${w.node}.${w.port}': node '${w.node}' is not part of the fused model`);
    const info = part.fragment.graph.outputs.find((o) => o.name === w.port);
    if (!info) throw new OnnxError(`node '${w.node}' has no ONNX output '${w.port}'`);
    const name = fusedName(w.node, w.port);
    if (outputs.has(name)) continue;
    outputs.set(name, w);
    graph.outputs.push({ ...(info as ValueInfo), name });
  }
  if (graph.outputs.length === 0) throw new OnnxError('the fused model would have no outputs');
  const model: Model = {
    irVersion: 8,
    producerName: 'vlm-composer',
    producerVersion: '0.1.0',
    opsets: { '': opset },
    graph,
    metadata: {},
  };
  return { model, inputs, outputs, weights };
}
