// Undo/redo as a change log: each entry records, per node and edge that a domain action touched, its state before
// and after (null = absent). Selection, measuring and hover never enter the log.

import type { ComposerEdge, ComposerNode, NodeData } from './model.js';

interface NodeState {
  position: { x: number; y: number };
  data: NodeData;
}

export interface Change<T> {
  id: string;
  before: T | null;
  after: T | null;
}

export interface Transaction {
  label: string;
  nodes: Change<NodeState>[];
  edges: Change<ComposerEdge>[];
}

const nodeState = (n: ComposerNode): NodeState => ({ position: { x: n.position.x, y: n.position.y }, data: n.data });

function sameNode(a: ComposerNode, b: ComposerNode): boolean {
  return a.data === b.data && a.position.x === b.position.x && a.position.y === b.position.y;
}

function sameEdge(a: ComposerEdge, b: ComposerEdge): boolean {
  return a.source === b.source && a.target === b.target && a.sourceHandle === b.sourceHandle && a.targetHandle === b.targetHandle;
}

/** The log entry taking (nodes, edges) `before` to `after`, or null when nothing a user cares about changed. */
export function diff(
  label: string,
  before: { nodes: readonly ComposerNode[]; edges: readonly ComposerEdge[] },
  after: { nodes: readonly ComposerNode[]; edges: readonly ComposerEdge[] },
): Transaction | null {
  const nodes: Change<NodeState>[] = [];
  const oldNodes = new Map(before.nodes.map((n) => [n.id, n]));
  const newNodes = new Map(after.nodes.map((n) => [n.id, n]));
  for (const [id, o] of oldNodes) {
    const n = newNodes.get(id);
    if (!n) nodes.push({ id, before: nodeState(o), after: null });
    else if (!sameNode(o, n)) nodes.push({ id, before: nodeState(o), after: nodeState(n) });
  }
  for (const [id, n] of newNodes) if (!oldNodes.has(id)) nodes.push({ id, before: null, after: nodeState(n) });

  const edges: Change<ComposerEdge>[] = [];
  const oldEdges = new Map(before.edges.map((e) => [e.id, e]));
  const newEdges = new Map(after.edges.map((e) => [e.id, e]));
  for (const [id, o] of oldEdges) {
    const n = newEdges.get(id);
    if (!n) edges.push({ id, before: o, after: null });
    else if (!sameEdge(o, n)) edges.push({ id, before: o, after: n });
  }
  for (const [id, n] of newEdges) if (!oldEdges.has(id)) edges.push({ id, before: null, after: n });

  return nodes.length || edges.length ? { label, nodes, edges } : null;
}

/** Applies one side of a transaction: `before` to undo, `after` to redo. */
export function apply(
  tx: Transaction,
  side: 'before' | 'after',
  current: { nodes: readonly ComposerNode[]; edges: readonly ComposerEdge[] },
): { nodes: ComposerNode[]; edges: ComposerEdge[] } {
  const nodeChanges = new Map(tx.nodes.map((c) => [c.id, c[side]]));
  const nodes: ComposerNode[] = [];
  for (const n of current.nodes) {
    if (!nodeChanges.has(n.id)) nodes.push(n);
    else {
      const state = nodeChanges.get(n.id);
      if (state) nodes.push({ ...n, position: state.position, data: state.data });
      nodeChanges.delete(n.id);
    }
  }
  for (const [id, state] of nodeChanges) if (state) nodes.push({ id, type: 'composer', position: state.position, data: state.data, selected: true });

  const edgeChanges = new Map(tx.edges.map((c) => [c.id, c[side]]));
  const edges: ComposerEdge[] = [];
  for (const e of current.edges) {
    if (!edgeChanges.has(e.id)) edges.push(e);
    else {
      const state = edgeChanges.get(e.id);
      if (state) edges.push(state);
      edgeChanges.delete(e.id);
    }
  }
  for (const state of edgeChanges.values()) if (state) edges.push(state);
  return { nodes, edges };
}

export const HISTORY_LIMIT = 200;
