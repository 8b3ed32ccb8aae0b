// vlmc validate GRAPH [--json]: every diagnostic of a graph (severity, node, port, message, fix); exit 0 without errors.

import { z } from 'zod';
import { GraphDocumentError } from '../engine/document.js';
import { validateDocument } from '../engine/validate.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { diagnosticJson, formatDiagnostic, loadGraph } from './graph-file.js';

const flagsSchema = z.object({ json: z.boolean().default(false) }).strict();

export const validateUsage = 'vlmc validate GRAPH|BUNDLE_DIR [--json]';

export async function validateCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ['json']);
  const opts = validateFlags(flagsSchema, flags);
  if (positionals.length !== 1) throw new UsageError(`usage: ${validateUsage}`);
  let loaded;
  try {
    loaded = loadGraph(positionals[0]);
  } catch (e) {
    // A document that does not even parse is one error diagnostic (its message names the JSON path).
    if (!(e instanceof GraphDocumentError) || !opts.json) throw e;
    out(diagnosticJson({ severity: 'error', message: e.message }));
    out(JSON.stringify({ type: 'summary', ok: false, errors: 1, warnings: 0 }));
    return 1;
  }
  const { doc } = loaded;
  const diagnostics = validateDocument(doc);
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  if (opts.json) {
    for (const d of diagnostics) out(diagnosticJson(d));
    out(JSON.stringify({ type: 'summary', ok: errors === 0, errors, warnings, graph: doc.name, nodes: doc.nodes.length, edges: doc.edges.length }));
  } else {
    for (const d of diagnostics) out(formatDiagnostic(d));
    out(
      errors === 0
        ? `ok: '${doc.name}' is valid (${doc.nodes.length} nodes, ${doc.edges.length} edges${warnings ? `, ${warnings} warning(s)` : ''})`
        : `${errors} error(s), ${warnings} warning(s) in '${doc.name}'`,
    );
  }
  return errors === 0 ? 0 : 1;
}
