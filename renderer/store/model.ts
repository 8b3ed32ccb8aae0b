// The canvas model: React Flow nodes/edges with small data, and pure conversions to and from the graph document.
// No React, no store: unit-tested on its own.

import type { Edge, Node, Viewport, XYPosition } from '@xyflow/react';
import type { AdapterSpec, GraphDocumentWire, NodeTypeInfoWire, PortSpecWire } from '../../electron/host/contract.js';

export type { AdapterSpec };

export type NodeData = {
  type: string;
  typeVersion: number;
  params: Record<string, unknown>;
  frozen: boolean;
  adapters: AdapterSpec[];
  weights?: { path: string; sha256?: string; hf?: { architecture: string; part: string; fingerprint: string } };
  /** Weights initialised from the seed although the weights file is loaded (kept so saving never drops them). */
  freshWeights?: string[];
  /**
   * Ports the host reported for these params (imported models read them from their file); a renderer-side cache,
   * never saved, used only while `key` matches the params.
   */
  ports?: { key: string; inputs: PortSpecWire[]; outputs: PortSpecWire[] };
};

export type ComposerNode = Node<NodeData, 'composer'>;
export type EdgeData = { kind: string; shape?: string };
export type ComposerEdge = Edge<EdgeData, 'shape'>;

export type CatalogIndex = Record<string, NodeTypeInfoWire>;

export const inHandle = (port: string) => `in:${port}`;
export const outHandle = (port: string) => `out:${port}`;
export const portOfHandle = (handle: string | null | undefined) => (handle ?? '').replace(/^(in|out):/, '');

export function edgeId(source: string, sourcePort: string, target: string, targetPort: string): string {
  return `e:${source}.${sourcePort}->${target}.${targetPort}`;
}

export function formatShape(shape: PortSpecWire['shape']): string | undefined {
  return shape && shape.length ? `[${shape.join(',')}]` : undefined;
}

/** Ports of a node: from the catalogue; empty when its type is unknown (the validator reports that). */
export function portsOf(info: NodeTypeInfoWire | undefined): { inputs: PortSpecWire[]; outputs: PortSpecWire[] } {
  return { inputs: info?.inputs ?? [], outputs: info?.outputs ?? [] };
}

/** Identifies the params a port query answered for. */
export function portsKey(data: Pick<NodeData, 'type' | 'params'>): string {
  return JSON.stringify([data.type, data.params]);
}

/** Types whose ports depend on their params (the catalogue lists them with no ports of their own). */
export function hasParamPorts(info: NodeTypeInfoWire | undefined): boolean {
  return info?.family === 'imported';
}

/** A node's ports: what the host reported for its current params, else the catalogue's. */
export function nodePorts(catalog: CatalogIndex, node: Pick<ComposerNode, 'data'> | undefined): { inputs: PortSpecWire[]; outputs: PortSpecWire[] } {
  if (!node) return portsOf(undefined);
  const cached = node.data.ports;
  if (cached && cached.key === portsKey(node.data)) return { inputs: cached.inputs, outputs: cached.outputs };
  return portsOf(catalog[node.data.type]);
}

export function makeEdge(
  catalog: CatalogIndex,
  nodes: readonly ComposerNode[],
  source: string,
  sourcePort: string,
  target: string,
  targetPort: string,
): ComposerEdge {
  const from = nodes.find((n) => n.id === source);
  const port = from ? nodePorts(catalog, from).outputs.find((p) => p.name === sourcePort) : undefined;
  return {
    id: edgeId(source, sourcePort, target, targetPort),
    type: 'shape',
    source,
    sourceHandle: outHandle(sourcePort),
    target,
    targetHandle: inHandle(targetPort),
    data: { kind: port?.kind ?? 'any', shape: formatShape(port?.shape) },
  };
}

/** Refreshes edge kinds/shapes once the catalogue is known (a document may load before it). */
export function withEdgeMeta(catalog: CatalogIndex, nodes: readonly ComposerNode[], edges: readonly ComposerEdge[]): ComposerEdge[] {
  return edges.map((e) => {
    const fresh = makeEdge(catalog, nodes, e.source, portOfHandle(e.sourceHandle), e.target, portOfHandle(e.targetHandle));
    return fresh.data?.kind === e.data?.kind && fresh.data?.shape === e.data?.shape ? e : { ...e, data: fresh.data };
  });
}

/** A readable, valid node id from the type (`projector.mlp` → `mlp`, `mlp_2`, ...). */
export function freshNodeId(type: string, taken: ReadonlySet<string>): string {
  const stem = (type.split('.').pop() ?? 'node').replace(/[^A-Za-z0-9_]/g, '_').replace(/^([^A-Za-z_])/, '_$1') || 'node';
  if (!taken.has(stem)) return stem;
  for (let i = 2; ; i++) if (!taken.has(`${stem}_${i}`)) return `${stem}_${i}`;
}

export function defaultParams(info: NodeTypeInfoWire): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const p of info.params) if (p.default !== null && p.default !== undefined) params[p.name] = p.default;
  return params;
}

export function createNode(info: NodeTypeInfoWire, id: string, position: XYPosition): ComposerNode {
  return {
    id,
    type: 'composer',
    position,
    data: { type: info.type, typeVersion: info.typeVersion, params: defaultParams(info), frozen: false, adapters: [] },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Document ↔ canvas

export function documentFromFlow(
  name: string,
  nodes: readonly ComposerNode[],
  edges: readonly ComposerEdge[],
  viewport?: Viewport,
): GraphDocumentWire {
  const positions: Record<string, { x: number; y: number }> = {};
  for (const n of nodes) positions[n.id] = { x: Math.round(n.position.x), y: Math.round(n.position.y) };
  return {
    format: 'composer.graph',
    version: 1,
    name,
    nodes: nodes.map((n) => ({
      id: n.id,
      type: n.data.type,
      typeVersion: n.data.typeVersion,
      params: n.data.params,
      frozen: n.data.frozen,
      adapters: n.data.adapters,
      ...(n.data.weights ? { weights: n.data.weights } : {}),
      ...(n.data.freshWeights?.length ? { freshWeights: n.data.freshWeights } : {}),
    })),
    edges: edges.map((e) => ({
      from: { node: e.source, port: portOfHandle(e.sourceHandle) },
      to: { node: e.target, port: portOfHandle(e.targetHandle) },
    })),
    ui: { positions, ...(viewport ? { viewport } : {}) },
  };
}

// A document from the host has every field; one made here may leave out those with defaults (engine/document.ts).

/** Column = longest path from a source; used when a document has no saved positions. */
function autoLayout(doc: GraphDocumentWire): Record<string, XYPosition> {
  const depth = new Map<string, number>(doc.nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < doc.nodes.length; pass++) {
    let changed = false;
    for (const e of doc.edges ?? []) {
      const d = (depth.get(e.from.node) ?? 0) + 1;
      if (depth.has(e.to.node) && d > (depth.get(e.to.node) ?? 0)) {
        depth.set(e.to.node, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const rows = new Map<number, number>();
  const out: Record<string, XYPosition> = {};
  for (const n of doc.nodes) {
    const col = depth.get(n.id) ?? 0;
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    out[n.id] = { x: col * 320, y: row * 220 };
  }
  return out;
}

export function flowFromDocument(
  doc: GraphDocumentWire,
  catalog: CatalogIndex,
): { name: string; nodes: ComposerNode[]; edges: ComposerEdge[]; viewport?: Viewport } {
  const saved = doc.ui?.positions ?? {};
  const layout = doc.nodes.every((n) => saved[n.id]) ? saved : autoLayout(doc);
  const nodes: ComposerNode[] = doc.nodes.map((n) => ({
    id: n.id,
    type: 'composer',
    position: { x: layout[n.id]?.x ?? 0, y: layout[n.id]?.y ?? 0 },
    data: {
      type: n.type,
      typeVersion: n.typeVersion ?? 1,
      params: { ...n.params },
      frozen: n.frozen ?? false,
      adapters: (n.adapters ?? []).map((a) => ({ ...a, config: a.config ?? {} })),
      ...(n.weights ? { weights: n.weights } : {}),
      ...(n.freshWeights?.length ? { freshWeights: n.freshWeights } : {}),
    },
  }));
  const edges = (doc.edges ?? []).map((e) => makeEdge(catalog, nodes, e.from.node, e.from.port, e.to.node, e.to.port));
  return { name: doc.name ?? 'untitled', nodes, edges, viewport: doc.ui?.viewport };
}

// ---------------------------------------------------------------------------------------------------------------
// Editing operations (pure: they return new arrays)

/** Can `sourcePort` of `source` feed `targetPort` of `target`? Returns the reason when not. */
export function connectionProblem(
  catalog: CatalogIndex,
  nodes: readonly ComposerNode[],
  edges: readonly ComposerEdge[],
  c: { source: string; sourceHandle?: string | null; target: string; targetHandle?: string | null },
): string | null {
  if (c.source === c.target) return 'a node cannot feed itself';
  const from = nodes.find((n) => n.id === c.source);
  const to = nodes.find((n) => n.id === c.target);
  if (!from || !to) return 'unknown node';
  const out = nodePorts(catalog, from).outputs.find((p) => p.name === portOfHandle(c.sourceHandle));
  const inp = nodePorts(catalog, to).inputs.find((p) => p.name === portOfHandle(c.targetHandle));
  if (!out || !inp) return 'unknown port';
  if (out.kind !== inp.kind && out.kind !== 'any' && inp.kind !== 'any') return `${out.kind} cannot feed ${inp.kind}`;
  if (edges.some((e) => e.target === c.target && e.targetHandle === c.targetHandle)) return `${to.id}.${inp.name} is already connected`;
  return null;
}

/**
 * Replaces a node's type, keeping its id, position and every connection whose port exists on the new type with a
 * compatible kind (matched by name first, then by kind). Params shared by name are kept.
 */
export function replaceNodeType(
  catalog: CatalogIndex,
  nodes: readonly ComposerNode[],
  edges: readonly ComposerEdge[],
  nodeId: string,
  newType: string,
): { nodes: ComposerNode[]; edges: ComposerEdge[]; dropped: string[] } {
  const info = catalog[newType];
  const old = nodes.find((n) => n.id === nodeId);
  if (!info || !old) return { nodes: [...nodes], edges: [...edges], dropped: [] };
  const params = defaultParams(info);
  for (const p of info.params) if (p.name in old.data.params) params[p.name] = old.data.params[p.name];
  // A weights file belongs to the old type's tensors: the new type starts from its own seeded init.
  const { weights: _oldWeights, ports: _oldPorts, ...kept } = old.data;
  const replaced: ComposerNode = { ...old, data: { ...kept, type: info.type, typeVersion: info.typeVersion, params } };
  const nextNodes = nodes.map((n) => (n.id === nodeId ? replaced : n));

  const pick = (ports: PortSpecWire[], name: string, kind: string | undefined, used: Set<string>) =>
    ports.find((p) => p.name === name && !used.has(p.name)) ??
    ports.find((p) => !used.has(p.name) && (p.kind === kind || p.kind === 'any' || kind === 'any'));
  const usedIn = new Set<string>();
  const usedOut = new Set<string>();
  const nextEdges: ComposerEdge[] = [];
  const dropped: string[] = [];
  for (const e of edges) {
    if (e.target === nodeId) {
      const port = pick(info.inputs, portOfHandle(e.targetHandle), e.data?.kind, usedIn);
      if (port) {
        usedIn.add(port.name);
        nextEdges.push(makeEdge(catalog, nextNodes, e.source, portOfHandle(e.sourceHandle), nodeId, port.name));
      } else dropped.push(`${e.source} → ${nodeId}.${portOfHandle(e.targetHandle)}`);
    } else if (e.source === nodeId) {
      const port = pick(info.outputs, portOfHandle(e.sourceHandle), e.data?.kind, usedOut);
      if (port) {
        // Several consumers may share one output port.
        nextEdges.push(makeEdge(catalog, nextNodes, nodeId, port.name, e.target, portOfHandle(e.targetHandle)));
      } else dropped.push(`${nodeId}.${portOfHandle(e.sourceHandle)} → ${e.target}`);
    } else nextEdges.push(e);
  }
  return { nodes: nextNodes, edges: nextEdges, dropped };
}

// Clipboard ----------------------------------------------------------------------------------------------------

export const CLIPBOARD_MARKER = 'composer.clipboard/1';

export interface ClipboardPayload {
  marker: typeof CLIPBOARD_MARKER;
  nodes: Array<{ id: string; position: XYPosition; data: NodeData }>;
  edges: Array<{ source: string; sourcePort: string; target: string; targetPort: string }>;
}

/** Selected nodes plus the edges with both ends selected. */
export function copySelection(nodes: readonly ComposerNode[], edges: readonly ComposerEdge[]): ClipboardPayload | null {
  const picked = nodes.filter((n) => n.selected);
  if (picked.length === 0) return null;
  const ids = new Set(picked.map((n) => n.id));
  return {
    marker: CLIPBOARD_MARKER,
    nodes: picked.map((n) => ({ id: n.id, position: { ...n.position }, data: structuredClone(n.data) })),
    edges: edges
      .filter((e) => ids.has(e.source) && ids.has(e.target))
      .map((e) => ({ source: e.source, sourcePort: portOfHandle(e.sourceHandle), target: e.target, targetPort: portOfHandle(e.targetHandle) })),
  };
}

export function parseClipboard(text: string): ClipboardPayload | null {
  try {
    const value = JSON.parse(text) as Partial<ClipboardPayload>;
    return value && value.marker === CLIPBOARD_MARKER && Array.isArray(value.nodes) && Array.isArray(value.edges)
      ? (value as ClipboardPayload)
      : null;
  } catch {
    return null;
  }
}

/** `id`, or `id_2`, `id_3` … when taken. */
function uniqueId(id: string, taken: ReadonlySet<string>): string {
  if (!taken.has(id)) return id;
  for (let i = 2; ; i++) if (!taken.has(`${id}_${i}`)) return `${id}_${i}`;
}

/**
 * Another graph's nodes joined to this one (an imported model dropped on the canvas): ids kept where free, else
 * suffixed (its edges follow), its top-left corner moved to `at`; the added nodes become the selection.
 */
export function mergeInto(
  catalog: CatalogIndex,
  nodes: readonly ComposerNode[],
  edges: readonly ComposerEdge[],
  incoming: { nodes: readonly ComposerNode[]; edges: readonly ComposerEdge[] },
  at: XYPosition,
): { nodes: ComposerNode[]; edges: ComposerEdge[] } {
  const taken = new Set(nodes.map((n) => n.id));
  const remap = new Map<string, string>();
  for (const n of incoming.nodes) {
    const id = uniqueId(n.id, taken);
    taken.add(id);
    remap.set(n.id, id);
  }
  const dx = at.x - Math.min(...incoming.nodes.map((n) => n.position.x));
  const dy = at.y - Math.min(...incoming.nodes.map((n) => n.position.y));
  const added: ComposerNode[] = incoming.nodes.map((n) => ({
    id: remap.get(n.id)!,
    type: 'composer',
    position: { x: n.position.x + dx, y: n.position.y + dy },
    data: structuredClone(n.data),
    selected: true,
  }));
  const nextNodes = [...nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...added];
  const addedEdges = incoming.edges
    .filter((e) => remap.has(e.source) && remap.has(e.target))
    .map((e) => makeEdge(catalog, nextNodes, remap.get(e.source)!, portOfHandle(e.sourceHandle), remap.get(e.target)!, portOfHandle(e.targetHandle)));
  return { nodes: nextNodes, edges: [...edges, ...addedEdges] };
}

/** Pasted nodes get fresh ids, are offset (or centred on `at`) and become the selection. */
export function pasteInto(
  catalog: CatalogIndex,
  nodes: readonly ComposerNode[],
  edges: readonly ComposerEdge[],
  payload: ClipboardPayload,
  at?: XYPosition,
): { nodes: ComposerNode[]; edges: ComposerEdge[] } {
  const taken = new Set(nodes.map((n) => n.id));
  const remap = new Map<string, string>();
  const minX = Math.min(...payload.nodes.map((n) => n.position.x));
  const minY = Math.min(...payload.nodes.map((n) => n.position.y));
  const dx = at ? at.x - minX : 40;
  const dy = at ? at.y - minY : 40;
  const added: ComposerNode[] = payload.nodes.map((n) => {
    const id = freshNodeId(n.data.type, taken);
    taken.add(id);
    remap.set(n.id, id);
    return { id, type: 'composer', position: { x: n.position.x + dx, y: n.position.y + dy }, data: structuredClone(n.data), selected: true };
  });
  const nextNodes = [...nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...added];
  const addedEdges = payload.edges
    .filter((e) => remap.has(e.source) && remap.has(e.target))
    .map((e) => makeEdge(catalog, nextNodes, remap.get(e.source)!, e.sourcePort, remap.get(e.target)!, e.targetPort));
  return { nodes: nextNodes, edges: [...edges, ...addedEdges] };
}
