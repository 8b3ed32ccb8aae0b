// vlmc inspect GRAPH|BUNDLE_DIR [--json]: per node its type, parameter count, trainable count, stored bytes and
// bits per parameter, frozen flag and adapters; then totals with the trainable share. Counts come from the real
// built fragments (Executor.fragmentOf), so they are exactly what runs and trains.

import { z } from 'zod';
import { type Tensor, tensorSize } from '../onnx/ir.js';
import type { GraphDocument } from '../engine/document.js';
import { Executor, RunPlan } from '../engine/executor.js';
import { validateDocument } from '../engine/validate.js';
import { NF4_SUFFIX, bitsPerParameter } from '../nodes/adapters/nf4.js';
import { WORD_EMBEDDING } from '../nodes/llms.js';
import type { OnnxFragment } from '../nodes/types.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { loadGraph, reportDiagnostics } from './graph-file.js';

const flagsSchema = z.object({ json: z.boolean().default(false) }).strict();

export const inspectUsage = 'vlmc inspect GRAPH|BUNDLE_DIR [--json]';

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
}

export interface InspectReport {
  graph: string;
  nodes: NodeStats[];
  total: { params: number; trainable: number; trainablePercent: number; bytes: number };
}

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

/** Per-node and total parameter statistics of a valid graph, from the built (and adapted) fragments. */
export async function inspectGraph(executor: Executor, doc: GraphDocument, baseDir: string): Promise<InspectReport> {
  const plan = new RunPlan(doc, executor.catalog, { baseDir, targets: doc.nodes.map((n) => n.id) });
  const nodes: NodeStats[] = [];
  for (const node of doc.nodes) {
    const def = plan.def(node.id);
    const stats: NodeStats = {
      id: node.id,
      nodeType: node.type,
      onnx: Boolean(def.build),
      frozen: node.frozen,
      params: 0,
      adapterParams: 0,
      trainable: 0,
      bytes: 0,
      bitsPerParam: null,
      adapters: node.adapters.map((a) => ({ id: a.id, method: a.method })),
    };
    nodes.push(stats);
    if (!def.build) continue;
    const fragment = await executor.fragmentOf(doc, baseDir, node.id);
    const adapterWeights = new Set((await executor.adaptersOf(doc, baseDir, node.id)).trainable);
    const owner = plan.weightOwner(node.id);
    let shared: string | undefined;
    if (owner !== node.id && (await executor.fragmentOf(doc, baseDir, owner)).graph.initializers.has(WORD_EMBEDDING)) {
      // A tied embedding is one tensor: it is counted for the decoder, whose fragment holds it too.
      stats.sharedWith = owner;
      shared = WORD_EMBEDDING;
    }
    let baseBits = 0;
    let adapterBits = 0;
    for (const w of fragment.weights) {
      const t = fragment.graph.initializers.get(w);
      if (!t || w === shared) continue;
      if (adapterWeights.has(w)) {
        stats.adapterParams += tensorSize(t.dims);
        adapterBits += storedBits(t);
      } else {
        stats.params += tensorSize(t.dims);
        baseBits += storedBits(t);
      }
    }
    const nf4 = nf4Weights(fragment);
    stats.params += nf4.params;
    baseBits += nf4.bits;
    stats.trainable = (node.frozen ? 0 : stats.params) + stats.adapterParams;
    stats.bytes = Math.round((baseBits + adapterBits) / 8);
    stats.bitsPerParam = stats.params ? baseBits / stats.params : null;
  }
  const params = nodes.reduce((n, s) => n + s.params + s.adapterParams, 0);
  const trainable = nodes.reduce((n, s) => n + s.trainable, 0);
  const bytes = nodes.reduce((n, s) => n + s.bytes, 0);
  return { graph: doc.name, nodes, total: { params, trainable, trainablePercent: params ? (100 * trainable) / params : 0, bytes } };
}

const fmt = (n: number) => n.toLocaleString('en-US');

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}


export async function inspectCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ['json']);
  const opts = validateFlags(flagsSchema, flags);
  if (positionals.length !== 1) throw new UsageError(`usage: ${inspectUsage}`);
  const { doc, baseDir } = loadGraph(positionals[0]);
  if (reportDiagnostics(validateDocument(doc).filter((d) => d.severity === 'error'), opts.json, out)) {
    if (!opts.json) console.error(`vlmc inspect: '${doc.name}' is not valid; fix the errors above first`);
    return 1;
  }
  const executor = new Executor();
  try {
    const report = await inspectGraph(executor, doc, baseDir);
    if (opts.json) {
      for (const n of report.nodes) out(JSON.stringify({ type: 'node', ...n }));
      out(JSON.stringify({ type: 'total', graph: report.graph, ...report.total }));
      return 0;
    }
    const rows = report.nodes.map((n) => [
      n.id,
      n.nodeType,
      n.sharedWith && n.params === 0 ? `shared (${n.sharedWith})` : fmt(n.params),
      fmt(n.trainable),
      formatBytes(n.bytes),
      n.bitsPerParam === null ? '-' : Number(n.bitsPerParam.toFixed(3)).toString(),
      n.onnx ? (n.frozen ? 'yes' : 'no') : '-',
      n.adapters.length ? `${n.adapters.map((a) => `${a.id}:${a.method}`).join(', ')} (+${fmt(n.adapterParams)})` : '-',
    ]);
    const header = ['node', 'type', 'params', 'trainable', 'stored', 'bits/param', 'frozen', 'adapters'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
    out(`graph '${report.graph}'`);
    out(line(header));
    for (const r of rows) out(line(r));
    const t = report.total;
    out(`total: ${fmt(t.params)} parameters, ${fmt(t.trainable)} trainable (${t.trainablePercent.toFixed(2)}%), ${formatBytes(t.bytes)} stored`);
    return 0;
  } finally {
    await executor.dispose();
  }
}
