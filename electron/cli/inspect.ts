// vlmc inspect GRAPH|BUNDLE_DIR [--json]: per node its type, parameter count, trainable count, stored bytes and
// bits per parameter, frozen flag and adapters; then totals with the trainable share. Counts come from the real
// built fragments (Executor.fragmentOf), so they are exactly what runs and trains; real-size presets without a
// checkpoint are counted from a describe-only build (electron/engine/param-stats.ts).

import { z } from 'zod';
import type { GraphDocument } from '../engine/document.js';
import { Executor } from '../engine/executor.js';
import { type InspectReport, parameterStats } from '../engine/param-stats.js';
import { validateDocument } from '../engine/validate.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { loadGraph, reportDiagnostics } from './graph-file.js';

export type { InspectReport, NodeStats } from '../engine/param-stats.js';

const flagsSchema = z.object({ json: z.boolean().default(false) }).strict();

export const inspectUsage = 'vlmc inspect GRAPH|BUNDLE_DIR [--json]';

/** Per-node and total parameter statistics of a valid graph (electron/engine/param-stats.ts). */
export function inspectGraph(executor: Executor, doc: GraphDocument, baseDir: string): Promise<InspectReport> {
  return parameterStats(executor, doc, baseDir);
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
    for (const n of report.nodes) {
      if (n.weightsFrom) out(`${n.id}: weights ${n.weightsFrom}`);
      if (n.freshWeights) out(`${n.id}: initialised from the seed despite the weights file: ${n.freshWeights.join(', ')}`);
    }
    const t = report.total;
    out(`total: ${fmt(t.params)} parameters, ${fmt(t.trainable)} trainable (${t.trainablePercent.toFixed(2)}%), ${formatBytes(t.bytes)} stored`);
    return 0;
  } finally {
    await executor.dispose();
  }
}
