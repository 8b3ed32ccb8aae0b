// Width propagation: resolves every port's shape through the graph, so 'auto' widths take D_in from upstream and
// D_out from what the downstream consumer expects (DESIGN.md §5). One topological pass over the document.

import type { GraphDocument, DocNode } from './document.js';
import type { Diagnostic } from './validate.js';
import { type Catalog, defaultCatalog, portsOf } from '../nodes/catalog.js';
import { type NodeTypeDef, type PortSpec, type ResolvedShapes, downstreamKey } from '../nodes/types.js';

export type Shape = Array<string | number>;

export interface NodeShapes {
  /** What the node is built with (`ctx.inputShapes`): upstream shapes by input port, downstream demands by `out:<port>`. */
  inputs: ResolvedShapes;
  /** What the node produces, by output port. */
  outputs: ResolvedShapes;
  /** What the node expects on each input for its params (checked against `inputs` by validation). */
  expected: ResolvedShapes;
}

/** A node whose type and params are known: the unit the shape pass and the validator work with. */
export interface ResolvedNode {
  node: DocNode;
  def: NodeTypeDef;
  /** Params after zod parsing (defaults filled in); undefined when they fail (validation reports why). */
  params: unknown;
  paramsValid: boolean;
  inputs: PortSpec[];
  outputs: PortSpec[];
}

export interface ShapePass {
  shapes: Map<string, NodeShapes>;
  /** Nodes in dependency order (nodes on a cycle are left out). */
  order: string[];
  /** Node ids that lie on a cycle. */
  cyclic: string[];
  problems: Diagnostic[];
}

export class ShapeError extends Error {
  override name = 'ShapeError';
}

/** Resolves types, params and ports of every node it can; nodes that fail are left out (validation reports why). */
export function resolveNodes(doc: GraphDocument, catalog: Catalog): Map<string, ResolvedNode> {
  const out = new Map<string, ResolvedNode>();
  for (const node of doc.nodes) {
    if (out.has(node.id)) continue;
    const def = catalog.lookup(node.type);
    if (!def) continue;
    const parsed = def.params.safeParse(node.params);
    if (!parsed.success) {
      // Static ports still let edges be checked; param-dependent ports cannot be known.
      if (!def.ports) {
        out.set(node.id, { node, def, params: undefined, paramsValid: false, inputs: def.info.inputs, outputs: def.info.outputs });
      }
      continue;
    }
    try {
      const ports = portsOf(def, parsed.data);
      out.set(node.id, { node, def, params: parsed.data, paramsValid: true, inputs: ports.inputs, outputs: ports.outputs });
    } catch {
      // Ports that cannot be derived (e.g. an imported file that is missing) are reported by validation.
    }
  }
  return out;
}

/** Input shapes a node expects for its params: the type's own rule, else the static port shapes. */
export function expectedInputShapes(r: ResolvedNode): ResolvedShapes {
  const fromType = r.def.inputShapes ? r.def.inputShapes(r.params) : {};
  const out: ResolvedShapes = {};
  for (const p of r.inputs) {
    const shape = fromType[p.name] ?? p.shape;
    if (shape) out[p.name] = shape;
  }
  return out;
}

/** Kahn's algorithm over the document's edges; nodes left over lie on (or behind) a cycle. */
export function topologicalOrder(doc: GraphDocument): { order: string[]; cyclic: string[] } {
  const ids = [...new Set(doc.nodes.map((n) => n.id))];
  const indegree = new Map(ids.map((id) => [id, 0]));
  const next = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of doc.edges) {
    if (!indegree.has(e.from.node) || !indegree.has(e.to.node)) continue;
    indegree.set(e.to.node, (indegree.get(e.to.node) ?? 0) + 1);
    next.get(e.from.node)?.push(e.to.node);
  }
  const ready = ids.filter((id) => indegree.get(id) === 0);
  const order: string[] = [];
  while (ready.length) {
    const id = ready.shift() as string;
    order.push(id);
    for (const m of next.get(id) ?? []) {
      const d = (indegree.get(m) ?? 0) - 1;
      indegree.set(m, d);
      if (d === 0) ready.push(m);
    }
  }
  const done = new Set(order);
  return { order, cyclic: ids.filter((id) => !done.has(id)) };
}

/** Runs the shape pass and reports problems as diagnostics instead of throwing (used by validation). */
export function propagateShapes(doc: GraphDocument, catalog: Catalog, nodes = resolveNodes(doc, catalog)): ShapePass {
  const { order, cyclic } = topologicalOrder(doc);
  // What each node expects on its inputs from its params alone.
  const paramExpected = new Map<string, ResolvedShapes>();
  for (const [id, r] of nodes) if (r.paramsValid) paramExpected.set(id, expectedInputShapes(r));

  const incoming = new Map<string, Array<{ port: string; fromNode: string; fromPort: string }>>();
  for (const e of doc.edges) {
    const list = incoming.get(e.to.node) ?? [];
    list.push({ port: e.to.port, fromNode: e.from.node, fromPort: e.from.port });
    incoming.set(e.to.node, list);
  }

  // Demands flow upstream and shapes downstream, so iterate: a width fixed by one branch (e.g. the token embeddings
  // entering a merge node) becomes the demand on another branch (the projector's 'auto' D_out) in the next round.
  let expected = paramExpected;
  let demands = demandsFrom(doc, expected);
  let pass = forwardPass(order, nodes, incoming, demands, expected);
  for (let round = 0; round < 4; round++) {
    expected = unifyWidths(nodes, paramExpected, pass.shapes);
    const next = demandsFrom(doc, expected);
    if (sameDemands(next, demands)) break;
    demands = next;
    pass = forwardPass(order, nodes, incoming, demands, expected);
  }
  return { shapes: pass.shapes, order, cyclic, problems: pass.problems };
}

type Incoming = Map<string, Array<{ port: string; fromNode: string; fromPort: string }>>;

function forwardPass(
  order: string[],
  nodes: Map<string, ResolvedNode>,
  incoming: Incoming,
  demands: Map<string, ResolvedShapes>,
  expected: Map<string, ResolvedShapes>,
): { shapes: Map<string, NodeShapes>; problems: Diagnostic[] } {
  const shapes = new Map<string, NodeShapes>();
  const problems: Diagnostic[] = [];
  for (const id of order) {
    const r = nodes.get(id);
    if (!r?.paramsValid) continue;
    const inputs: ResolvedShapes = { ...(demands.get(id) ?? {}) };
    let upstreamUnknown = false;
    for (const edge of incoming.get(id) ?? []) {
      if (!r.inputs.some((p) => p.name === edge.port)) continue;
      const shape = shapes.get(edge.fromNode)?.outputs[edge.fromPort];
      if (shape) inputs[edge.port] ??= shape;
      else if (!shapes.has(edge.fromNode)) upstreamUnknown = true;
    }
    let computed: ResolvedShapes;
    try {
      computed = r.def.outputShapes(r.params, inputs);
    } catch (e) {
      // A failure caused by a broken upstream node is that node's problem, already reported.
      if (!upstreamUnknown) {
        problems.push({
          severity: 'error',
          nodeId: id,
          message: `node '${id}' (${r.def.info.type}): cannot work out its output shapes: ${(e as Error).message}`,
        });
      }
      continue;
    }
    const outputs: ResolvedShapes = {};
    for (const p of r.outputs) {
      const shape = computed[p.name] ?? p.shape;
      if (shape) outputs[p.name] = shape;
    }
    shapes.set(id, { inputs, outputs, expected: expected.get(id) ?? {} });
  }
  return { shapes, problems };
}

/** For each producer: the shape its consumers expect on each output, when that shape fixes any dim. */
function demandsFrom(doc: GraphDocument, expected: Map<string, ResolvedShapes>): Map<string, ResolvedShapes> {
  const demands = new Map<string, ResolvedShapes>();
  for (const e of doc.edges) {
    const want = expected.get(e.to.node)?.[e.to.port];
    if (!want || !want.some((d) => typeof d === 'number')) continue;
    const forNode = demands.get(e.from.node) ?? {};
    forNode[downstreamKey(e.from.port)] ??= want;
    demands.set(e.from.node, forNode);
  }
  return demands;
}

function sameDemands(a: Map<string, ResolvedShapes>, b: Map<string, ResolvedShapes>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (JSON.stringify(v) !== JSON.stringify(b.get(k))) return false;
  return true;
}

/**
 * Feature widths shared by name across a node's inputs: when two inputs end in the same symbol (the merge node's
 * image_features [B,N,D] and token_embeds [B,S,D]), a concrete width arriving on one is expected on the others.
 * Only the last dim is unified (widths); a symbol that arrives with two different widths stays unbound, and
 * `widthConflicts` reports it.
 */
function unifyWidths(
  nodes: Map<string, ResolvedNode>,
  paramExpected: Map<string, ResolvedShapes>,
  shapes: Map<string, NodeShapes>,
): Map<string, ResolvedShapes> {
  const out = new Map<string, ResolvedShapes>();
  for (const [id, base] of paramExpected) {
    const r = nodes.get(id) as ResolvedNode;
    const bound = boundWidths(r, base, shapes.get(id)?.inputs ?? {});
    const unified: ResolvedShapes = {};
    for (const [port, shape] of Object.entries(base)) {
      const last = shape[shape.length - 1];
      const value = typeof last === 'string' ? bound.get(last) : undefined;
      unified[port] = value !== undefined && value.size === 1 ? [...shape.slice(0, -1), [...value][0]] : shape;
    }
    out.set(id, unified);
  }
  return out;
}

/** Symbol → the concrete widths arriving for it on the node's inputs. */
function boundWidths(r: ResolvedNode, expected: ResolvedShapes, inputs: ResolvedShapes): Map<string, Set<number>> {
  const bound = new Map<string, Set<number>>();
  for (const p of r.inputs) {
    const template = expected[p.name];
    const actual = inputs[p.name];
    if (!template?.length || !actual?.length || template.length !== actual.length) continue;
    const sym = template[template.length - 1];
    const width = actual[actual.length - 1];
    if (typeof sym !== 'string' || typeof width !== 'number') continue;
    const set = bound.get(sym) ?? new Set<number>();
    set.add(width);
    bound.set(sym, set);
  }
  return bound;
}

/** Inputs of one node that should share a width but arrive with different ones. */
export function widthConflicts(r: ResolvedNode, s: NodeShapes): Array<{ symbol: string; ports: Array<[string, number]> }> {
  const base = r.paramsValid ? expectedInputShapes(r) : {};
  const out: Array<{ symbol: string; ports: Array<[string, number]> }> = [];
  for (const [symbol, widths] of boundWidths(r, base, s.inputs)) {
    if (widths.size < 2) continue;
    const ports: Array<[string, number]> = [];
    for (const p of r.inputs) {
      const t = base[p.name];
      const a = s.inputs[p.name];
      if (t?.[t.length - 1] === symbol && typeof a?.[a.length - 1] === 'number') ports.push([p.name, a[a.length - 1] as number]);
    }
    out.push({ symbol, ports });
  }
  return out;
}

/**
 * Shapes of every node's ports (the executor builds nodes with `inputShapes = result.get(id).inputs`).
 * Throws naming the node when a shape cannot be resolved; run `validateDocument` first for the full list.
 */
export function resolveShapes(doc: GraphDocument, catalog: Catalog = defaultCatalog): Map<string, NodeShapes> {
  const nodes = resolveNodes(doc, catalog);
  for (const n of doc.nodes) {
    if (!nodes.get(n.id)?.paramsValid) {
      throw new ShapeError(`node '${n.id}' (${n.type}): unknown type or invalid params; validate the graph for details`);
    }
  }
  const pass = propagateShapes(doc, catalog, nodes);
  if (pass.cyclic.length) throw new ShapeError(`the graph has a cycle through node '${pass.cyclic[0]}'`);
  if (pass.problems.length) throw new ShapeError(pass.problems.map((p) => p.message).join('\n'));
  return pass.shapes;
}

/** Concrete width of the last dim, or undefined when symbolic. */
export function lastDim(shape: Shape | undefined): number | undefined {
  const d = shape?.[shape.length - 1];
  return typeof d === 'number' ? d : undefined;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}
