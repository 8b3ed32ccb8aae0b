// vlmc compare GRAPH --node ID --with TYPE[,TYPE...] [--image PATH]... [--prompt TEXT] [--json]

import { resolve } from 'node:path';
import { z } from 'zod';
import { type CompareProgress, type VariantResult, compareVariants } from '../engine/compare.js';
import { mapRunInputs } from '../engine/run-io.js';
import { UsageError, parseArgs, validateFlags, takeRepeated } from './args.js';
import { loadGraph } from './graph-file.js';
import { compareOnDatasetCommand, datasetCompareFlags } from './compare-dataset.js';

export const compareUsage =
  'vlmc compare GRAPH --node ID --with TYPE[,TYPE...] [--image PATH]... [--prompt TEXT] [--json]\n' +
  '  vlmc compare GRAPH --node ID --with TYPE[,TYPE...] --dataset shapes|PATH [--task T] [--limit N] [--train-steps N --recipe R [--reinit]] [--out DIR] [--json]';

const flagsSchema = z
  .object({
    node: z.string({ error: 'give the node to replace, e.g. --node qformer' }).min(1),
    with: z.string({ error: 'give the types to compare with, e.g. --with mlp,linear' }).min(1),
    prompt: z.string().optional(),
    'prompt-node': z.string().min(1).optional(),
    out: z.string().min(1).optional(),
    json: z.boolean().default(false),
    ...datasetCompareFlags,
  })
  .strict();

const fmtCount = (n: number) => n.toLocaleString('en-US');

function clip(text: string, width: number): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > width ? `${one.slice(0, width - 1)}…` : one;
}

/** A side-by-side table: one row per variant (and image). */
export function formatTable(variants: VariantResult[]): string[] {
  const multiImage = new Set(variants.map((v) => v.image ?? 0)).size > 1;
  const header = ['variant', ...(multiImage ? ['image'] : []), 'type', 'output', 'latency ms', 'total params', 'trainable'];
  const rows = variants.map((v) => [
    v.variant === 0 ? '0 (graph)' : String(v.variant),
    ...(multiImage ? [v.imageName ?? ''] : []),
    v.nodeType,
    `"${clip(v.output, 46)}"`,
    v.latencyMs.toFixed(1),
    fmtCount(v.totalParams),
    fmtCount(v.trainableParams),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const numeric = new Set([header.length - 3, header.length - 2, header.length - 1]);
  const line = (cells: string[]) => cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

export async function compareCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { values: images, rest } = takeRepeated(argv, 'image');
  const { positionals, flags } = parseArgs(rest, ['json', 'reinit']);
  const opts = validateFlags(flagsSchema, flags);
  if (positionals.length !== 1) throw new UsageError(`usage: ${compareUsage}`);
  const { doc, baseDir } = loadGraph(positionals[0]);
  const candidates = opts.with.split(',').map((s) => s.trim()).filter(Boolean);
  if (candidates.length === 0) throw new UsageError('--with: give at least one type, e.g. --with mlp,linear');
  if (opts.dataset !== undefined) {
    if (images.length) throw new UsageError('--image and --dataset do not go together: the dataset gives the images');
    return compareOnDatasetCommand({ ...opts, dataset: opts.dataset, node: opts.node }, { doc, baseDir, candidates, graphArg: positionals[0] }, out);
  }
  const datasetOnly = (['train-steps', 'recipe', 'reinit', 'task', 'limit', 'split'] as const).find((k) => flags[k] !== undefined);
  if (datasetOnly) throw new UsageError(`--${datasetOnly} compares on a dataset: give --dataset shapes or a dataset file`);
  const inputs = mapRunInputs(doc, { prompt: opts.prompt, promptNode: opts['prompt-node'] });
  const events: string[] = [];
  const onEvent = (e: CompareProgress) => {
    // The node events of engine/messages.ts (as `vlmc run --json` prints them), with the variant and image they ran for.
    if (!opts.json || e.type !== 'node' || (e.event.type !== 'cached' && e.event.type !== 'computed')) return;
    events.push(JSON.stringify({ ...e.event, variant: e.variant, ...(e.image !== undefined ? { image: e.image } : {}) }));
  };
  const res = await compareVariants(doc, {
    baseDir,
    node: opts.node,
    with: candidates,
    inputs,
    images: images.map((p) => resolve(p)),
    outDir: opts.out ? resolve(opts.out) : undefined,
    onEvent,
  });
  if (opts.json) {
    for (const e of events) out(e);
    for (const v of res.variants) {
      out(
        JSON.stringify({
          type: 'variant',
          variant: v.variant,
          nodeType: v.nodeType,
          ...(v.image !== undefined ? { image: v.image, imageName: v.imageName } : {}),
          output: v.output,
          outputs: v.outputs,
          latencyMs: round(v.latencyMs),
          totalParams: v.totalParams,
          trainableParams: v.trainableParams,
          nodeParams: v.nodeParams,
          computed: v.computed,
          cached: v.cached,
          notes: v.notes,
        }),
      );
    }
    out(JSON.stringify({ type: 'summary', node: res.node, variants: res.variants.length, computeCounts: res.computeCounts, totalMs: round(res.totalMs) }));
    return 0;
  }
  for (const l of formatTable(res.variants)) out(l);
  const notes = [...new Set(res.variants.flatMap((v) => v.notes))];
  if (notes.length) {
    out('');
    for (const n of notes) out(`note: ${n}`);
  }
  // Nodes that ran fewer times than there were variant runs: the shared upstream, served from the cache.
  const shared = Object.entries(res.computeCounts)
    .filter(([, n]) => n < res.variants.length)
    .map(([id]) => id);
  out('');
  out(`shared by all variants (computed once${images.length > 1 ? ' per image' : ''}, then cached): ${shared.join(', ') || 'nothing'}`);
  out(`total ${res.totalMs.toFixed(0)} ms`);
  return 0;
}

const round = (x: number) => Math.round(x * 100) / 100;
