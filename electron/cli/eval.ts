// vlmc eval GRAPH --dataset PATH|shapes [--split eval|train|all] [--task caption|vqa|retrieval|zero-shot|generation]
//           [--limit N] [--prompt TEXT] [--questions FILE] [--images DIR] [--clip GRAPH] [--out DIR] [--json]

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { EVAL_TASKS, type EvalSet, loadEvalSet } from '../engine/eval/datasets.js';
import { type EvalProgress, type EvalResult, type EvalSampleRecord, defaultTask, evaluateGraph } from '../engine/eval/runner.js';
import { writeFileAtomic } from '../onnx/atomic.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { loadGraph } from './graph-file.js';

export const evalUsage =
  'vlmc eval GRAPH --dataset shapes|PATH [--split eval|train|all] [--task caption|vqa|retrieval|zero-shot|generation] [--limit N] ' +
  '[--prompt TEXT] [--questions FILE] [--images DIR] [--clip GRAPH] [--out DIR] [--json]';

export const evalFlags = {
  dataset: z.string({ error: "give the data to evaluate on: --dataset shapes or a dataset file" }).min(1),
  split: z.enum(['eval', 'train', 'all']).optional(),
  task: z.enum(EVAL_TASKS).optional(),
  limit: z.coerce.number().int().positive().optional(),
  prompt: z.string().optional(),
  questions: z.string().min(1).optional(),
  images: z.string().min(1).optional(),
  seed: z.coerce.number().int().default(0),
  out: z.string().min(1).optional(),
  json: z.boolean().default(false),
};
const flagsSchema = z.object({ ...evalFlags, clip: z.string().min(1).optional() }).strict();

/** The evaluation set a CLI command asked for; the task defaults to what the graph does. */
export function evalSetFor(o: { dataset: string; split?: 'eval' | 'train' | 'all'; task?: EvalSet['task']; limit?: number; questions?: string; images?: string; seed: number }, doc: Parameters<typeof defaultTask>[0]): EvalSet {
  const dataset = o.dataset === 'shapes' ? 'shapes' : resolve(o.dataset);
  const task = o.task ?? defaultTask(doc, { vqa: o.questions !== undefined });
  return loadEvalSet(dataset, { task, split: o.split, limit: o.limit, seed: o.seed, questions: o.questions && resolve(o.questions), images: o.images && resolve(o.images) });
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4));

/** A table with one row per result: the given leading columns, then every metric any row has. */
export function metricTable(rows: Array<{ cells: Record<string, string>; metrics: Record<string, number> }>, paperMetric?: string): string[] {
  const lead = [...new Set(rows.flatMap((r) => Object.keys(r.cells)))];
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
  // The paper metric first, then the rest in their order.
  if (paperMetric && names.includes(paperMetric)) names.splice(names.indexOf(paperMetric), 1), names.unshift(paperMetric);
  const header = [...lead, ...names];
  const body = rows.map((r) => [...lead.map((k) => r.cells[k] ?? ''), ...names.map((n) => (r.metrics[n] === undefined ? '—' : fmt(r.metrics[n])))]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < lead.length ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
}

/** One JSONL line per sample: what went in, the reference, what came out, its scores. */
export function sampleLine(r: EvalSampleRecord): string {
  return JSON.stringify({ id: r.id, input: r.input, reference: r.reference, prediction: r.prediction, scores: r.scores, miss: r.miss, latency_ms: Math.round(r.latencyMs * 100) / 100 });
}

/** Writes samples.jsonl and metrics.json into `dir`; returns the JSONL path. */
export function writeEvalOutputs(dir: string, result: EvalResult, extra: Record<string, unknown> = {}): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'samples.jsonl');
  writeFileAtomic(path, result.samples.map(sampleLine).join('\n') + '\n');
  writeFileAtomic(
    join(dir, 'metrics.json'),
    `${JSON.stringify({ task: result.task, dataset: result.dataset, paper_metric: result.paperMetric, metrics: result.metrics, samples: result.samples.length, latency_ms: result.latencyMs, ...extra }, null, 2)}\n`,
  );
  return path;
}

/** Progress on stderr (one line, rewritten) or as JSON lines on stdout. */
export function progressReporter(json: boolean, out: (line: string) => void, label = 'eval'): (p: EvalProgress) => void {
  let last = 0;
  return (p) => {
    if (json) {
      out(JSON.stringify({ type: 'progress', done: p.done, total: p.total, eta_s: Math.round(p.etaSeconds), id: p.id }));
      return;
    }
    const now = performance.now();
    if (p.done < p.total && now - last < 250) return;
    last = now;
    const line = `${label} ${p.done}/${p.total}  ${(p.elapsedMs / 1000).toFixed(0)}s elapsed  eta ${Math.round(p.etaSeconds)}s`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}${p.done === p.total ? '\n' : ''}`);
    else if (p.done === p.total || p.done % 10 === 0) process.stderr.write(`${line}\n`);
  };
}

export function defaultOutDir(graphName: string, task: string): string {
  return join(tmpdir(), 'vlmc-eval', `${graphName.replace(/[^A-Za-z0-9._-]+/g, '_')}-${task}-${Date.now()}`);
}

export async function evalCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ['json']);
  const o = validateFlags(flagsSchema, flags);
  if (positionals.length !== 1) throw new UsageError(`usage: ${evalUsage}`);
  const { doc, baseDir } = loadGraph(positionals[0]);
  const set = evalSetFor(o, doc);
  const clip = o.clip ? loadGraph(o.clip) : undefined;
  const result = await evaluateGraph(doc, set, {
    baseDir,
    prompt: o.prompt,
    clip: clip && { doc: clip.doc, baseDir: clip.baseDir },
    onProgress: progressReporter(o.json, out),
  });
  const dir = resolve(o.out ?? defaultOutDir(doc.name, set.task));
  const jsonl = writeEvalOutputs(dir, result, { graph: positionals[0] });
  if (o.json) {
    out(JSON.stringify({ type: 'result', task: result.task, dataset: result.dataset, paper_metric: result.paperMetric, metrics: result.metrics, samples: result.samples.length, misses: result.samples.filter((s) => s.miss).length, latency_ms: result.latencyMs, samples_file: jsonl }));
    return 0;
  }
  out(`${doc.name} on ${result.dataset}: ${result.task}, ${result.samples.length} samples`);
  for (const l of metricTable([{ cells: { graph: doc.name }, metrics: result.metrics }], result.paperMetric)) out(l);
  out('');
  out(`latency ${result.latencyMs.toFixed(1)} ms/sample; ${result.samples.filter((s) => s.miss).length} misses`);
  out(`per-sample outputs: ${jsonl}`);
  return 0;
}
