// vlmc import DIR [--out GRAPH.graph.json] [--json]: a Hugging Face model folder (save_pretrained layout or the hub
// cache's snapshots/<rev>/) becomes a runnable graph whose nodes read the folder's weights where they lie.
// vlmc import VISION_DIR LLM_DIR --as llava: a LLaVA built from a CLIP vision folder and a causal-LM folder.

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../onnx/atomic.js';
import { importHfFolder } from '../formats/hf/import.js';
import { folderDisplayName } from '../formats/hf/architectures/mapping.js';
import { COMPOSITIONS, composeLlava } from '../formats/hf/compose.js';
import { UsageError, parseArgs, validateFlags } from './args.js';

const flagsSchema = z
  .object({ out: z.string().min(1).optional(), json: z.boolean().default(false), as: z.enum(COMPOSITIONS).optional(), precision: z.string().min(1).optional() })
  .strict();

export const importUsage = 'vlmc import DIR [--out GRAPH.graph.json] [--precision fp32|fp16|q8|q4|…] [--json]  |  vlmc import VISION_DIR LLM_DIR --as llava [--out …]';

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export async function importCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ['json']);
  const opts = validateFlags(flagsSchema, flags);
  if (opts.as) {
    if (positionals.length !== 2) throw new UsageError(`--as ${opts.as} takes two folders, VISION_DIR LLM_DIR (usage: ${importUsage})`);
    const [vision, llm] = positionals.map((p) => resolve(p));
    const graphPath = resolve(opts.out ?? 'llava.graph.json');
    const { doc, notes } = composeLlava(vision, llm, { graphDir: dirname(graphPath) });
    mkdirSync(dirname(graphPath), { recursive: true });
    writeFileAtomic(graphPath, `${JSON.stringify(doc, null, 2)}\n`);
    if (opts.json) out(JSON.stringify({ type: 'result', graph: graphPath, notes, nodes: doc.nodes.map((n) => ({ id: n.id, type: n.type })) }));
    else {
      out(`composed ${doc.name}: ${doc.nodes.map((n) => n.id).join(' → ')}`);
      for (const note of notes) out(`  note: ${note}`);
      out(`wrote ${graphPath}`);
    }
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`usage: ${importUsage}`);
  const dir = resolve(positionals[0]);
  const graphPath = resolve(opts.out ?? `${folderDisplayName(dir).replace(/[^A-Za-z0-9_.-]+/g, '_')}.graph.json`);
  const imported = importHfFolder(dir, { graphDir: dirname(graphPath), precision: opts.precision });
  const { doc, summary, notes } = imported;
  const onnx = imported.onnx;
  mkdirSync(dirname(graphPath), { recursive: true });
  writeFileAtomic(graphPath, `${JSON.stringify(doc, null, 2)}\n`);
  if (opts.json) {
    out(JSON.stringify({ type: 'result', graph: graphPath, summary, notes, ...(onnx ? { onnx } : {}), nodes: doc.nodes.map((n) => ({ id: n.id, type: n.type })) }));
    return 0;
  }
  out(`imported ${summary.class} from ${summary.dir}${onnx ? ` (ONNX, ${onnx.precision}: ${Object.values(onnx.graphs).join(' + ')})` : ''}`);
  out(`  ${formatCount(summary.parameters)} parameters, ${summary.dtypes.join('/')}, ${(summary.weightBytes / 2 ** 20).toFixed(1)} MiB of weights (read where they lie)`);
  out(`  ${doc.nodes.length} nodes: ${doc.nodes.map((n) => `${n.id} (${n.type})`).join(', ')}`);
  for (const note of notes) out(`  note: ${note}`);
  out(`wrote ${graphPath}`);
  return 0;
}

