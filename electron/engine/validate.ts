// Semantic validation of a graph document: types, params, ports, kinds, shapes, cycles. Returns diagnostics the UI
// pins on nodes and edges (DESIGN.md §4); it never throws for a bad document.

import type { z } from 'zod';
import type { GraphDocument, DocEdge } from './document.js';
import { type Catalog, defaultCatalog, editDistance, paramShape, portsOf } from '../nodes/catalog.js';
import type { NodeTypeDef, PortKind, PortSpec } from '../nodes/types.js';
import { type ResolvedNode, formatShape, propagateShapes, resolveNodes, widthConflicts } from './widths.js';

export interface Diagnostic {
  severity: 'error' | 'warning';
  nodeId?: string;
  port?: string;
  message: string;
  /** A concrete change that would fix it, when there is one. */
  fix?: string;
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

export function validateDocument(doc: GraphDocument, catalog: Catalog = defaultCatalog): Diagnostic[] {
  const out: Diagnostic[] = [];
  checkNodeIds(doc, out);
  checkTypesAndParams(doc, catalog, out);
  const nodes = resolveNodes(doc, catalog);
  checkNodeExtras(doc, nodes, out);
  checkPortsDerivable(doc, catalog, nodes, out);
  checkEdges(doc, nodes, out);
  checkCycles(doc, out);
  const pass = propagateShapes(doc, catalog, nodes);
  out.push(...pass.problems);
  checkShapes(doc, nodes, pass.shapes, out);
  return out;
}

function label(id: string, type: string): string {
  return `node '${id}' (${type})`;
}

function checkNodeIds(doc: GraphDocument, out: Diagnostic[]): void {
  const seen = new Set<string>();
  for (const n of doc.nodes) {
    if (seen.has(n.id)) {
      out.push({
        severity: 'error',
        nodeId: n.id,
        message: `duplicate node id '${n.id}': every node needs its own id`,
        fix: `rename one of the '${n.id}' nodes`,
      });
    }
    seen.add(n.id);
  }
}

function closest(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const s = editDistance(name.toLowerCase(), c.toLowerCase());
    if (s < bestScore) [best, bestScore] = [c, s];
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function checkTypesAndParams(doc: GraphDocument, catalog: Catalog, out: Diagnostic[]): void {
  for (const n of doc.nodes) {
    const def = catalog.lookup(n.type);
    if (!def) {
      const viaAlias = catalog.find(n.type);
      const close = viaAlias ? [viaAlias.info.type] : catalog.closeMatches(n.type);
      out.push({
        severity: 'error',
        nodeId: n.id,
        message: `node '${n.id}': unknown node type '${n.type}'`,
        fix: close.length ? `use ${close.map((c) => `'${c}'`).join(' or ')}` : undefined,
      });
      continue;
    }
    const who = label(n.id, n.type);
    if (n.typeVersion > def.info.typeVersion) {
      out.push({
        severity: 'error',
        nodeId: n.id,
        message: `${who}: typeVersion ${n.typeVersion} is newer than this Composer's (${def.info.typeVersion})`,
      });
    } else if (n.typeVersion < def.info.typeVersion) {
      out.push({
        severity: 'warning',
        nodeId: n.id,
        message: `${who}: saved with typeVersion ${n.typeVersion}; it is read as version ${def.info.typeVersion}`,
      });
    }
    checkParams(n.id, n.params, def, out);
  }
}

function checkParams(id: string, params: Record<string, unknown>, def: NodeTypeDef, out: Diagnostic[]): void {
  const who = label(id, def.info.type);
  const known = Object.keys(paramShape(def));
  for (const name of Object.keys(params)) {
    if (known.includes(name)) continue;
    const near = closest(name, known);
    out.push({
      severity: 'error',
      nodeId: id,
      message: `${who}: unknown param '${name}'`,
      fix: near ? `rename '${name}' to '${near}'` : `remove '${name}' (known params: ${known.join(', ') || 'none'})`,
    });
  }
  const givenKnown = Object.fromEntries(Object.entries(params).filter(([k]) => known.includes(k)));
  const result = def.params.safeParse(givenKnown);
  if (result.success) return;
  for (const issue of result.error.issues as z.core.$ZodIssue[]) {
    const name = String(issue.path[0] ?? '');
    const where = issue.path.length > 1 ? `${name}${issue.path.slice(1).map((k) => `[${String(k)}]`).join('')}` : name;
    if (name && !(name in givenKnown) && issue.code === 'invalid_type') {
      out.push({ severity: 'error', nodeId: id, message: `${who}: missing param '${name}'`, fix: `set '${name}'` });
    } else {
      out.push({
        severity: 'error',
        nodeId: id,
        message: name ? `${who}: param '${where}': ${issue.message}` : `${who}: params: ${issue.message}`,
      });
    }
  }
}

function checkNodeExtras(doc: GraphDocument, nodes: Map<string, ResolvedNode>, out: Diagnostic[]): void {
  for (const n of doc.nodes) {
    const r = nodes.get(n.id);
    if (r?.node !== n) continue;
    const who = label(n.id, n.type);
    const ids = new Set<string>();
    for (const a of n.adapters) {
      if (ids.has(a.id)) out.push({ severity: 'error', nodeId: n.id, message: `${who}: duplicate adapter id '${a.id}'` });
      ids.add(a.id);
    }
    if (!r.def.build && (n.adapters.length || n.weights)) {
      out.push({
        severity: 'error',
        nodeId: n.id,
        message: `${who}: a host-side node has no ONNX weights, so it cannot take ${n.adapters.length ? 'adapters' : 'a weights file'}`,
        fix: n.adapters.length ? 'remove its adapters' : 'remove its weights entry',
      });
    }
  }
}

/** Nodes whose params parse but whose ports cannot be derived (e.g. an imported ONNX file that cannot be read). */
function checkPortsDerivable(doc: GraphDocument, catalog: Catalog, nodes: Map<string, ResolvedNode>, out: Diagnostic[]): void {
  for (const n of doc.nodes) {
    if (nodes.has(n.id)) continue;
    const def = catalog.lookup(n.type);
    const parsed = def?.params.safeParse(n.params);
    if (!def || !parsed?.success) continue;
    try {
      portsOf(def, parsed.data);
    } catch (e) {
      out.push({ severity: 'error', nodeId: n.id, message: `${label(n.id, n.type)}: ${(e as Error).message}` });
    }
  }
}

function portList(ports: PortSpec[]): string {
  return ports.map((p) => p.name).join(', ') || 'none';
}

const CONVERTERS: Partial<Record<`${PortKind}->${PortKind}`, string>> = {
  'text->tokens': 'insert a tokenizer node between them',
  'image->embeds': 'insert an image encoder (e.g. encoder.clip_vit) between them',
  'tokens->embeds': 'connect the tokens to an LLM or text encoder instead',
  'logits->text': 'insert a generation (decode) node between them',
  'pooled->embeds': 'use the encoder\'s last_hidden_state output, or a projector that makes tokens',
  'embeds->pooled': 'use the encoder\'s pooler_output, or a pooling node',
};

function checkEdges(doc: GraphDocument, nodes: Map<string, ResolvedNode>, out: Diagnostic[]): void {
  const docIds = new Set(doc.nodes.map((n) => n.id));
  const into = new Map<string, DocEdge[]>();
  for (const e of doc.edges) {
    const edgeText = `edge ${e.from.node}.${e.from.port} → ${e.to.node}.${e.to.port}`;
    let ok = true;
    for (const [end, ref] of [['from', e.from], ['to', e.to]] as const) {
      if (!docIds.has(ref.node)) {
        out.push({
          severity: 'error',
          nodeId: end === 'to' ? e.from.node : e.to.node,
          port: end === 'to' ? e.from.port : e.to.port,
          message: `${edgeText}: no node '${ref.node}' in the graph`,
          fix: 'remove the edge or add the node',
        });
        ok = false;
        continue;
      }
      const r = nodes.get(ref.node);
      if (!r) {
        ok = false; // type or params problem, reported on the node
        continue;
      }
      const ports = end === 'from' ? r.outputs : r.inputs;
      if (!ports.some((p) => p.name === ref.port)) {
        const near = closest(ref.port, ports.map((p) => p.name));
        out.push({
          severity: 'error',
          nodeId: ref.node,
          port: ref.port,
          message: `${edgeText}: ${label(ref.node, r.def.info.type)} has no ${end === 'from' ? 'output' : 'input'} port '${ref.port}'`,
          fix: near ? `use port '${near}'` : `its ${end === 'from' ? 'outputs' : 'inputs'} are: ${portList(ports)}`,
        });
        ok = false;
      }
    }
    if (e.from.node === e.to.node && docIds.has(e.from.node)) {
      out.push({ severity: 'error', nodeId: e.to.node, port: e.to.port, message: `${edgeText}: a node cannot feed itself (cycle)` });
      ok = false;
    }
    const key = `${e.to.node}\u0000${e.to.port}`;
    into.set(key, [...(into.get(key) ?? []), e]);
    if (!ok) continue;
    const src = nodes.get(e.from.node)?.outputs.find((p) => p.name === e.from.port) as PortSpec;
    const dst = nodes.get(e.to.node)?.inputs.find((p) => p.name === e.to.port) as PortSpec;
    if (src.kind !== dst.kind && src.kind !== 'any' && dst.kind !== 'any') {
      out.push({
        severity: 'error',
        nodeId: e.to.node,
        port: e.to.port,
        message: `${edgeText}: kind mismatch: '${e.from.port}' carries ${src.kind} but '${e.to.port}' takes ${dst.kind}`,
        fix: CONVERTERS[`${src.kind}->${dst.kind}`],
      });
    }
  }
  for (const edges of into.values()) {
    if (edges.length < 2) continue;
    const { node, port } = edges[0].to;
    out.push({
      severity: 'error',
      nodeId: node,
      port,
      message: `input '${node}.${port}' has ${edges.length} incoming edges (from ${edges.map((e) => `${e.from.node}.${e.from.port}`).join(', ')}); an input takes one`,
      fix: 'remove all but one of them',
    });
  }
  for (const [id, r] of nodes) {
    for (const p of r.inputs) {
      if (p.optional || into.has(`${id}\u0000${p.name}`)) continue;
      out.push({
        severity: 'error',
        nodeId: id,
        port: p.name,
        message: `${label(id, r.def.info.type)}: required input '${p.name}' (${p.kind}) is not connected`,
        fix: `connect an output of kind ${p.kind} to '${p.name}'`,
      });
    }
  }
}

/** Reports one cycle per strongly connected group, naming its nodes in order. */
function checkCycles(doc: GraphDocument, out: Diagnostic[]): void {
  const next = new Map<string, string[]>();
  for (const e of doc.edges) {
    if (e.from.node === e.to.node) continue; // self-loops are reported with the edge
    next.set(e.from.node, [...(next.get(e.from.node) ?? []), e.to.node]);
  }
  const state = new Map<string, 'open' | 'done'>();
  const reported = new Set<string>();
  const path: string[] = [];
  const visit = (id: string): void => {
    state.set(id, 'open');
    path.push(id);
    for (const m of next.get(id) ?? []) {
      if (state.get(m) === 'open') {
        const cycle = path.slice(path.indexOf(m));
        if (!cycle.some((c) => reported.has(c))) {
          cycle.forEach((c) => reported.add(c));
          out.push({
            severity: 'error',
            nodeId: m,
            message: `the graph has a cycle: ${[...cycle, m].join(' → ')}`,
            fix: 'remove one of the edges on the cycle',
          });
        }
      } else if (!state.has(m)) {
        visit(m);
      }
    }
    path.pop();
    state.set(id, 'done');
  };
  for (const n of doc.nodes) if (!state.has(n.id)) visit(n.id);
}

function checkShapes(
  doc: GraphDocument,
  nodes: Map<string, ResolvedNode>,
  shapes: ReturnType<typeof propagateShapes>['shapes'],
  out: Diagnostic[],
): void {
  for (const [id, s] of shapes) {
    const r = nodes.get(id);
    if (!r) continue;
    for (const { symbol, ports } of widthConflicts(r, s)) {
      const fixes = ports.flatMap(([port, width]) => {
        const edge = doc.edges.find((e) => e.to.node === id && e.to.port === port);
        const src = edge && nodes.get(edge.from.node);
        const other = ports.find(([, w]) => w !== width)?.[1];
        const param = src && paramWithValue(src, width);
        return src && param && other !== undefined
          ? [`set ${src.node.id}.${param} to ${other}${acceptsAuto(src, param) ? " or 'auto'" : ''}`]
          : [];
      });
      out.push({
        severity: 'error',
        nodeId: id,
        port: ports[0][0],
        message: `${label(id, r.def.info.type)}: inputs ${ports.map(([p, w]) => `'${p}' (${w})`).join(' and ')} must have the same width ${symbol}`,
        fix: fixes[0],
      });
    }
  }
  for (const e of doc.edges) {
    const actual = shapes.get(e.from.node)?.outputs[e.from.port];
    const expected = shapes.get(e.to.node)?.expected[e.to.port];
    const src = nodes.get(e.from.node);
    const dst = nodes.get(e.to.node);
    if (!actual || !expected || !src || !dst) continue;
    const edgeText = `edge ${e.from.node}.${e.from.port} ${formatShape(actual)} → ${e.to.node}.${e.to.port} ${formatShape(expected)}`;
    if (actual.length !== expected.length) {
      out.push({
        severity: 'error',
        nodeId: e.to.node,
        port: e.to.port,
        message: `${edgeText}: rank mismatch (${actual.length} vs ${expected.length} dims)`,
      });
      continue;
    }
    for (let i = 0; i < actual.length; i++) {
      const a = actual[i];
      const want = expected[i];
      if (typeof a !== 'number' || typeof want !== 'number' || a === want) continue;
      out.push({
        severity: 'error',
        nodeId: e.to.node,
        port: e.to.port,
        message: `${edgeText}: dimension ${i} is ${a} but '${e.to.port}' needs ${want}`,
        fix: suggestDimFix(src, dst, e, a, want, i === actual.length - 1),
      });
    }
  }
}

const WIDTH_PARAM = /(^d_|_out$|out|width|hidden|dim|size|channels)/;

/** A param of `r` set to `value` explicitly in the document, preferring width-like names. */
function paramWithValue(r: ResolvedNode, value: number): string | undefined {
  const hits = Object.entries(r.node.params)
    .filter(([, v]) => v === value)
    .map(([k]) => k);
  return hits.find((k) => WIDTH_PARAM.test(k)) ?? hits[0];
}

function acceptsAuto(r: ResolvedNode, param: string): boolean {
  return r.def.params.safeParse({ ...r.node.params, [param]: 'auto' }).success;
}

function suggestDimFix(src: ResolvedNode, dst: ResolvedNode, e: DocEdge, actual: number, wanted: number, isLast: boolean): string {
  const srcParam = paramWithValue(src, actual);
  if (srcParam) {
    return `set ${src.node.id}.${srcParam} to ${wanted}${acceptsAuto(src, srcParam) ? " or 'auto'" : ''}`;
  }
  const dstParam = paramWithValue(dst, wanted);
  if (dstParam) return `set ${dst.node.id}.${dstParam} to ${actual}`;
  const port = src.outputs.find((p) => p.name === e.from.port);
  if (isLast && (port?.kind === 'embeds' || port?.kind === 'pooled')) {
    return `insert a Linear projector (projector.linear, d_out ${wanted}) between ${e.from.node}.${e.from.port} and ${e.to.node}.${e.to.port}`;
  }
  return `make ${e.from.node}.${e.from.port} produce ${wanted} there`;
}

