// Run benchmark: what the interactive executor costs, per template in graphs/.
//
//   npx tsx bench/run.ts [--reps N] [--template NAME] [--json]
//
// Per template (tiny presets, one 64×64 image, CPU):
//   full cold   one run on a fresh executor (builds every node's fragment and ORT session, then computes)
//   full warm   a run with sessions built but an empty output cache (median)
//   per-node    the vision path (image → encoder → projector, export/onnx.ts visionPath) run node by node by the
//               executor: the sum of those nodes' times in the warm runs (median)
//   fused       the same path as ONE ORT session built by Executor.fuse (median); fused/per-node
//   swap        the projector replaced (→ projector.linear, or → projector.mlp when it already is linear): the re-run
//               with the upstream cached, against (the variant's full warm run − the time of the nodes the re-run
//               took from the cache); the aim is ≤ 1.05 (the cache adds nothing but lookups)
//   ours/bare   our fused run (createSession + runSession, IR tensors in and out) against a bare onnxruntime session on
//               the same model bytes with pre-built feeds, both at batch 8 (3×reps interleaved); the aim is ≤ 1.05
//   tok/s       generation speed of the template's decoder with and without the KV cache (max_new_tokens 32, greedy;
//               a row may stop earlier at </s>: tokens counts what was produced)
// Times in ms are medians over --reps runs (default 10) after a warm-up run. The swap and ours/bare ratios are medians
// of paired ratios (the two sides run back to back, so a load spike hits both); fused/per-node and tokens/s use the
// fastest run of each side (load only ever slows a run down). The load average is printed with the table.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { z } from 'zod';
import { parameterCounts, variantDocument } from '../electron/engine/compare.js';
import { mapRunInputs } from '../electron/engine/run-io.js';
import { type GraphDocument, parseGraphDocument } from '../electron/engine/document.js';
import { Executor, type RunInput, type RunResult } from '../electron/engine/executor.js';
import { fusedVisionModel } from '../electron/export/onnx.js';
import type { Tensor } from '../electron/onnx/ir.js';
import { createSession, runSession, toOrtTensor } from '../electron/onnx/ort.js';
import { serializeModel } from '../electron/onnx/proto.js';

const GRAPHS = join(import.meta.dirname, '..', 'graphs');
const GOAL_SWAP = 1.05;
const GOAL_OURS_OVER_BARE = 1.05;
const GEN_TOKENS = 32;

const argsSchema = z.object({
  reps: z.number().int().min(1).max(1000),
  template: z.string().optional(),
  json: z.boolean(),
});
type Args = z.infer<typeof argsSchema>;

function parseArgs(argv: string[]): Args {
  const raw: Record<string, unknown> = { reps: 10, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') raw.json = true;
    else if (a === '--reps') raw.reps = Number(argv[++i]);
    else if (a === '--template') raw.template = argv[++i];
    else throw new Error(`unknown argument '${a}' (usage: npx tsx bench/run.ts [--reps N] [--template NAME] [--json])`);
  }
  const r = argsSchema.safeParse(raw);
  if (!r.success) throw new Error(`bench/run.ts: ${r.error.issues[0].path.join('.')}: ${r.error.issues[0].message}`);
  return r.data;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

const OURS_VS_BARE_BATCH = 8;

/** `n` copies of a batch-1 tensor along dim 0. */
function tile(t: Tensor, n: number): Tensor {
  if (Array.isArray(t.data)) throw new Error('string tensors are not fed to the vision path');
  const src = t.data;
  const data = new (src.constructor as new (len: number) => typeof src)(src.length * n);
  for (let i = 0; i < n; i++) (data as { set(a: ArrayLike<unknown>, at: number): void }).set(src as ArrayLike<unknown>, i * src.length);
  return { dtype: t.dtype, dims: [t.dims[0] * n, ...t.dims.slice(1)], data } as Tensor;
}

interface Row {
  template: string;
  fullColdMs: number;
  fullWarmMs: number;
  visionPath: string[];
  perNodeMs?: number;
  fusedMs?: number;
  fusedOverPerNode?: number;
  swap?: { node: string; from: string; to: string; rerunMs: number; expectedMs: number; ratio: number };
  oursMs?: number;
  bareMs?: number;
  oursOverBare?: number;
  generation?: { node: string; tokensCache: number; tokensNoCache: number; tokPerSecCache: number; tokPerSecNoCache: number; speedup: number };
  notes: string[];
}

async function timed(run: () => Promise<RunResult>): Promise<{ res: RunResult; ms: number }> {
  const t0 = performance.now();
  const res = await run();
  return { res, ms: performance.now() - t0 };
}

async function benchTemplate(file: string, image: string, reps: number): Promise<Row> {
  const doc = parseGraphDocument(readFileSync(join(GRAPHS, file), 'utf8'), file);
  const inputs: Record<string, RunInput> = mapRunInputs(
    doc,
    { image: { name: 'bench.png', path: image }, prompt: doc.nodes.some((n) => n.type === 'io.text') ? 'what is in the image?' : undefined },
    { imageOptional: true },
  );
  const row: Row = { template: file.replace(/\.graph\.json$/, ''), fullColdMs: 0, fullWarmMs: 0, visionPath: [], notes: [] };

  // Full run on a fresh executor (build + compute), then warm runs with an empty output cache.
  const executor = new Executor();
  try {
    const run = (d: GraphDocument) => executor.run(d, { baseDir: GRAPHS, inputs });
    row.fullColdMs = (await timed(() => run(doc))).ms;
    const warm: Array<{ res: RunResult; ms: number }> = [];
    for (let i = 0; i < reps; i++) {
      executor.cache.clear();
      warm.push(await timed(() => run(doc)));
    }
    row.fullWarmMs = median(warm.map((w) => w.ms));
    const last = warm[warm.length - 1].res;

    // Vision path: per node (executor) against fused (one session).
    let path: string[] = [];
    try {
      const fused = await fusedVisionModel(doc, GRAPHS, executor);
      path = fused.nodes;
      row.visionPath = path;
      row.perNodeMs = median(warm.map((w) => sum(path.map((id) => w.res.timings[id] ?? 0))));
      const feeds: Record<string, Tensor> = {};
      for (const p of fused.inputs) {
        const [node, port] = [p.source.slice(0, p.source.indexOf('.')), p.source.slice(p.source.indexOf('.') + 1)];
        const v = last.outputs[node]?.[port];
        if (!v || typeof v === 'string') throw new Error(`no tensor for fused input '${p.name}' (${p.source})`);
        feeds[p.name] = v;
      }
      const bytes = serializeModel(fused.model).model;
      const ours = await createSession(bytes);
      const bare = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
      const fusedMs: number[] = [];
      for (let i = 0; i <= reps; i++) {
        const t0 = performance.now();
        await runSession(ours, feeds);
        if (i > 0) fusedMs.push(performance.now() - t0);
      }
      row.fusedMs = median(fusedMs);
      row.fusedOverPerNode = Math.min(...fusedMs) / Math.min(...warm.map((w) => sum(path.map((id) => w.res.timings[id] ?? 0))));
      // Ours against bare ORT at batch 8, so a run is long enough that the comparison is not all timer noise.
      const batched = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, tile(v, OURS_VS_BARE_BATCH)]));
      const bareFeeds = Object.fromEntries(Object.entries(batched).map(([k, v]) => [k, toOrtTensor(v, k)]));
      await runSession(ours, batched);
      await bare.run(bareFeeds);
      const oursMs: number[] = [];
      const bareMs: number[] = [];
      for (let i = 0; i < reps * 3; i++) {
        let t0 = performance.now();
        await runSession(ours, batched);
        oursMs.push(performance.now() - t0);
        t0 = performance.now();
        await bare.run(bareFeeds);
        bareMs.push(performance.now() - t0);
      }
      await ours.release();
      await bare.release();
      row.oursMs = median(oursMs);
      row.bareMs = median(bareMs);
      row.oursOverBare = median(oursMs.map((o, i) => o / bareMs[i]));
    } catch (e) {
      row.notes.push(`fused: ${(e as Error).message}`);
    }

    // Projector swap: the re-run with upstream cached against the variant's full run minus the cached nodes.
    const projector = doc.nodes.find((n) => executor.catalog.lookup(n.type)?.info.family === 'input-projector' && (path.length === 0 || path.includes(n.id)))
      ?? doc.nodes.find((n) => executor.catalog.lookup(n.type)?.info.family === 'input-projector');
    if (projector) {
      const to = projector.type === 'projector.linear' ? 'projector.mlp' : 'projector.linear';
      try {
        const variant = variantDocument(doc, projector.id, to, executor).doc;
        await parameterCounts(executor, variant, GRAPHS);
        await run(variant);
        const rerun: number[] = [];
        const expected: number[] = [];
        for (let i = 0; i < reps; i++) {
          // Alternate which side runs first, so whichever sessions ran last (warm CPU caches) favour neither side.
          const measureFull = async () => {
            executor.cache.clear();
            return timed(() => run(variant));
          };
          const measureRerun = async () => {
            executor.cache.clear();
            await run(doc);
            return timed(() => run(variant));
          };
          const full = i % 2 === 0 ? await measureFull() : undefined;
          const again = await measureRerun();
          const fullRun = full ?? (await measureFull());
          rerun.push(again.ms);
          expected.push(fullRun.ms - sum(again.res.cached.map((id) => fullRun.res.timings[id] ?? 0)));
        }
        row.swap = { node: projector.id, from: projector.type, to, rerunMs: median(rerun), expectedMs: median(expected), ratio: median(rerun.map((r, i) => r / expected[i])) };
      } catch (e) {
        row.notes.push(`swap: ${(e as Error).message}`);
      }
    }

    // Generation with and without the KV cache.
    const decoder = doc.nodes.find((n) => n.type === 'llm.decoder');
    if (decoder) {
      const withCache = (useCache: boolean): GraphDocument => ({
        ...doc,
        nodes: doc.nodes.map((n) => (n.id === decoder.id ? { ...n, params: { ...n.params, max_new_tokens: GEN_TOKENS, use_cache: useCache } } : n)),
      });
      const speed = async (useCache: boolean) => {
        const d = withCache(useCache);
        const rates: number[] = [];
        let tokens = 0;
        for (let i = 0; i < Math.max(3, Math.ceil(reps / 3)); i++) {
          executor.cache.clear();
          const res = await run(d);
          const ids = res.outputs[decoder.id]?.generated_ids;
          tokens = ids && typeof ids !== 'string' ? ids.dims[1] : 0;
          rates.push(tokens / (res.timings[decoder.id] / 1000));
        }
        return { tokens, rate: Math.max(...rates) };
      };
      const on = await speed(true);
      const off = await speed(false);
      row.generation = { node: decoder.id, tokensCache: on.tokens, tokensNoCache: off.tokens, tokPerSecCache: on.rate, tokPerSecNoCache: off.rate, speedup: on.rate / off.rate };
    }
  } finally {
    await executor.dispose();
  }
  return row;
}

const f1 = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(1));
const f2 = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(2));

function printTable(rows: Row[]): void {
  const header = ['template', 'cold ms', 'warm ms', 'path per-node ms', 'fused ms', 'fused/per-node', 'swap re-run ms', 'expected ms', 'swap ratio', 'ours/bare b8', 'tok/s kv', 'tok/s no-kv', 'kv speedup'];
  const cells = rows.map((r) => [
    r.template,
    f1(r.fullColdMs),
    f1(r.fullWarmMs),
    f2(r.perNodeMs),
    f2(r.fusedMs),
    f2(r.fusedOverPerNode),
    f1(r.swap?.rerunMs),
    f1(r.swap?.expectedMs),
    f2(r.swap?.ratio),
    f2(r.oursOverBare),
    f1(r.generation?.tokPerSecCache),
    f1(r.generation?.tokPerSecNoCache),
    f2(r.generation?.speedup),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
  console.log('');
  for (const r of rows) {
    const parts = [`vision path ${r.visionPath.join(' → ') || 'none'}`];
    if (r.swap) parts.push(`swap ${r.swap.node}: ${r.swap.from} → ${r.swap.to}`);
    if (r.generation) parts.push(`tokens ${r.generation.tokensCache} (kv) / ${r.generation.tokensNoCache} (no kv)`);
    console.log(`${r.template}: ${parts.join('; ')}${r.notes.length ? `; ${r.notes.join('; ')}` : ''}`);
  }
  const swaps = rows.filter((r) => r.swap).map((r) => r.swap!.ratio);
  const bare = rows.filter((r) => r.oursOverBare !== undefined).map((r) => r.oursOverBare!);
  console.log('');
  if (swaps.length) console.log(`swap re-run / (full − cached upstream): median ${f2(median(swaps))}, worst ${f2(Math.max(...swaps))} (aim ≤ ${GOAL_SWAP})`);
  if (bare.length) console.log(`ours / bare ORT (fused vision path): median ${f2(median(bare))}, worst ${f2(Math.max(...bare))} (aim ≤ ${GOAL_OURS_OVER_BARE})`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const files = readdirSync(GRAPHS)
    .filter((f) => f.endsWith('.graph.json'))
    .filter((f) => !args.template || f.startsWith(args.template))
    .sort();
  if (files.length === 0) throw new Error(`no templates in ${GRAPHS}${args.template ? ` matching '${args.template}'` : ''}`);
  const dir = mkdtempSync(join(tmpdir(), 'composer-bench-run-'));
  const image = join(dir, 'bench.png');
  await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c84' } }).png().toFile(image);
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  const rows: Row[] = [];
  try {
    for (const f of files) {
      let row: Row;
      try {
        row = await benchTemplate(f, image, args.reps);
      } catch (e) {
        // One broken template does not hide the others' numbers.
        row = { template: f.replace(/\.graph\.json$/, ''), fullColdMs: NaN, fullWarmMs: NaN, visionPath: [], notes: [`failed: ${(e as Error).message}`] };
      }
      rows.push(row);
      if (args.json) console.log(JSON.stringify({ type: 'template', ...row }));
      else console.error(`  ${row.template} done`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (args.json) {
    console.log(JSON.stringify({ type: 'summary', reps: args.reps, loadavg: load, templates: rows.length }));
    return;
  }
  console.log(`bench/run.ts — ${rows.length} templates, medians of ${args.reps} runs, load average ${load} (2 cores, shared)`);
  console.log('');
  printTable(rows);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
