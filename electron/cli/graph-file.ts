// Finding and reading the graph a CLI command works on: a `*.graph.json` file, or a bundle folder (from
// `vlmc export`) holding `graph.json` or exactly one `*.graph.json`. Relative paths in the graph resolve against
// the folder the graph lives in.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type GraphDocument, parseGraphDocument } from '../engine/document.js';
import { type Diagnostic, hasErrors } from '../engine/validate.js';

export class GraphFileError extends Error {
  override name = 'GraphFileError';
}

export interface LoadedGraph {
  doc: GraphDocument;
  /** The graph file that was read. */
  file: string;
  /** Folder relative paths in the graph resolve against. */
  baseDir: string;
}

/** The graph file for a path argument (a file, or a bundle folder). */
export function resolveGraphFile(target: string): string {
  const path = resolve(target);
  if (!existsSync(path)) throw new GraphFileError(`no such file or folder: ${target}`);
  if (!statSync(path).isDirectory()) return path;
  if (existsSync(join(path, 'graph.json'))) return join(path, 'graph.json');
  const graphs = readdirSync(path).filter((f) => f.endsWith('.graph.json')).sort();
  if (graphs.length === 1) return join(path, graphs[0]);
  if (graphs.length === 0) throw new GraphFileError(`folder ${target} has no graph.json or *.graph.json (is it a bundle from vlmc export?)`);
  throw new GraphFileError(`folder ${target} has several graphs (${graphs.join(', ')}); name one of them`);
}

export function loadGraph(target: string): LoadedGraph {
  const file = resolveGraphFile(target);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new GraphFileError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return { doc: parseGraphDocument(text, basename(file)), file, baseDir: dirname(file) };
}

/** One diagnostic as a line: severity, node and port, message, and the fix when there is one. */
export function formatDiagnostic(d: Diagnostic): string {
  // Most messages already start with the node; name it (and the port) only when they do not.
  const named = d.nodeId !== undefined && d.message.includes(`'${d.nodeId}'`);
  const where = [!named && d.nodeId && `node '${d.nodeId}'`, d.port && `port '${d.port}'`].filter(Boolean).join(' ');
  return `${d.severity.padEnd(7)} ${where ? `${where}: ` : ''}${d.message}${d.fix ? `\n        fix: ${d.fix}` : ''}`;
}

/** A diagnostic as one JSON line. */
export function diagnosticJson(d: Diagnostic): string {
  return JSON.stringify({ type: 'diagnostic', severity: d.severity, node: d.nodeId ?? null, port: d.port ?? null, message: d.message, fix: d.fix ?? null });
}

/** Prints every diagnostic (stdout lines in JSON mode, stderr otherwise); true when one of them is an error. */
export function reportDiagnostics(diagnostics: readonly Diagnostic[], json: boolean, out: (line: string) => void): boolean {
  for (const d of diagnostics) {
    if (json) out(diagnosticJson(d));
    else console.error(formatDiagnostic(d));
  }
  return hasErrors(diagnostics);
}
