// Level of detail and node geometry for the canvas. Below LOW_DETAIL_ZOOM a node's 11–13 px text is at most 3 px on
// screen, unreadable, so nodes draw as light family-coloured boxes with a large title and edges lose their shape labels;
// that keeps panning a large graph fit to the view fast (every element left out is paint and layerisation saved per
// frame). The threshold sits below the zoom the bundled templates fit at (the widest, nextgpt, fits at 0.27 in a
// 1440×900 window), so a template always opens in full detail.

import { useStore, type ReactFlowState } from '@xyflow/react';
import type { Diagnostic } from '../../electron/host/contract.js';
import type { ComposerEdge } from '../store/model.js';

export const LOW_DETAIL_ZOOM = 0.25;

const lowDetail = (s: ReactFlowState) => s.transform[2] < LOW_DETAIL_ZOOM;

/** True below the detail threshold; a boolean, so subscribers re-render only when the zoom crosses it. */
export function useLowDetail(): boolean {
  return useStore(lowDetail);
}

/**
 * Vertical geometry of a node at full detail, in flow pixels. styles.css gives these sections the same fixed sizes
 * (`.cnode`, `.cnode-head`, `.cnode-ports`, `.port`, `.cnode-params`, `.kv`, `.cnode-foot`), so the light box is exactly
 * as tall as the full node and its handles sit where the port rows are: nothing moves when the zoom crosses the
 * threshold. Extras that only some nodes show (run output, images, problem lists) are left out.
 */
export const NODE_WIDTH = 236;
const BORDER_TOP = 3;
const BORDER_BOTTOM = 1;
const HEAD = 50;
const PORTS_PAD = 6;
const PORT_ROW = 20;
const PORT_GAP = 2;
const PARAMS_PAD = 5;
const PARAM_ROW = 16;
const PARAM_GAP = 1;
const SECTION_BORDER = 1;
const FOOT = 28;
export const SHOWN_PARAMS = 3;

/** Outer height of a node with this many port rows and shown params. */
export function nodeHeight(portRows: number, params: number): number {
  const ports = 2 * PORTS_PAD + portRows * PORT_ROW + Math.max(0, portRows - 1) * PORT_GAP;
  const paramBlock = params > 0 ? SECTION_BORDER + 2 * PARAMS_PAD + params * PARAM_ROW + (params - 1) * PARAM_GAP : 0;
  return BORDER_TOP + HEAD + ports + paramBlock + FOOT + BORDER_BOTTOM;
}

/** Centre of port row `row` from the top of the node's padding box (where absolutely placed handles are measured). */
export function portRowCentre(row: number): number {
  return HEAD + PORTS_PAD + row * (PORT_ROW + PORT_GAP) + PORT_ROW / 2;
}

// Per-node and per-edge lookups into the diagnostics, built once per diagnostics array: each node's selector is then
// a map read that returns the same array until validation reports again (no O(nodes × diagnostics) per store change).

const EMPTY: readonly string[] = [];
const byNode = new WeakMap<Diagnostic[], Map<string, string[]>>();
const byTargetPort = new WeakMap<Diagnostic[], Map<string, string>>();

/** The node's messages as `severity:port: message`, errors and warnings in the validator's order. */
export function nodeProblems(diagnostics: Diagnostic[], nodeId: string): readonly string[] {
  let index = byNode.get(diagnostics);
  if (!index) {
    index = new Map();
    for (const d of diagnostics) {
      if (!d.nodeId) continue;
      const list = index.get(d.nodeId) ?? [];
      list.push(`${d.severity}:${d.port ? `${d.port}: ` : ''}${d.message}`);
      index.set(d.nodeId, list);
    }
    byNode.set(diagnostics, index);
  }
  return index.get(nodeId) ?? EMPTY;
}

/** The first error the validator reports on input `port` of node `nodeId` (the edge into it is drawn red). */
export function inputError(diagnostics: Diagnostic[], nodeId: string, port: string): string | undefined {
  let index = byTargetPort.get(diagnostics);
  if (!index) {
    index = new Map();
    for (const d of diagnostics) {
      if (d.severity !== 'error' || !d.nodeId || d.port === undefined) continue;
      const key = `${d.nodeId}\u0000${d.port}`;
      if (!index.has(key)) index.set(key, d.message);
    }
    byTargetPort.set(diagnostics, index);
  }
  return index.get(`${nodeId}\u0000${port}`);
}

// The handles that edges use, per node: a light node renders only these (every handle is a React Flow component with
// its own store subscription, and most ports of a large graph are unconnected).

const connectedByNode = new WeakMap<ComposerEdge[], Map<string, string>>();

/** The ids of node `nodeId`'s handles that an edge attaches to, joined by spaces (a string, so selectors compare it by value). */
export function connectedHandles(edges: ComposerEdge[], nodeId: string): string {
  let index = connectedByNode.get(edges);
  if (!index) {
    const sets = new Map<string, Set<string>>();
    const add = (node: string, handle: string | null | undefined) => {
      if (!handle) return;
      const set = sets.get(node) ?? new Set();
      set.add(handle);
      sets.set(node, set);
    };
    for (const e of edges) {
      add(e.source, e.sourceHandle);
      add(e.target, e.targetHandle);
    }
    index = new Map([...sets].map(([node, set]) => [node, [...set].sort().join(' ')]));
    connectedByNode.set(edges, index);
  }
  return index.get(nodeId) ?? '';
}
