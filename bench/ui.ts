// UI benchmark: our real canvas against a bare React Flow page, both in headless Chromium, in the same run.
//
//   npx tsx bench/ui.ts [--nodes 300,1000] [--reps N] [--pan-ms MS] [--rebuild] [--json]
//
// Per graph size N (a grid of encoder.clip_vit → projector.mlp → llm.decoder triples, edges inside each triple):
//   first render   from the graph file landing in the page's file input (its `change` event) until N React Flow nodes
//                  are in the DOM and measured (none still `visibility: hidden`), timed in the page
//   pan fps        requestAnimationFrame callbacks per second during --pan-ms (default 3000) of a mouse drag on the
//                  empty pane, one mousemove per frame, counted in the page
// Ours is the app served by the browser-mode host (`electron/start.ts --browser`), opening the file through the
// toolbar's Open input; the bare page (bench/ui/bare.tsx) shows default nodes with the same positions and edges.
// Both sides run alternately, a fresh page each time; the table shows medians and the ratios ours/bare (first render,
// aim ≤ 1.3) and ours/bare (fps, aim ≥ 0.8). --rebuild rebuilds dist/renderer first (otherwise the existing build
// is used; its age is printed).

import { createReadStream, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import react from '@vitejs/plugin-react';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { z } from 'zod';
import { parseGraphDocument } from '../electron/engine/document.js';
import { type BrowserHost, CHROMIUM_ARGS, startBrowserHost } from '../e2e/browser-host.js';

const ROOT = join(import.meta.dirname, '..');
const BARE_DIR = join(import.meta.dirname, 'ui');
const RENDERER_DIST = join(ROOT, 'dist', 'renderer');
const GOAL_FIRST_RENDER = 1.3;
const GOAL_FPS = 0.8;
const VIEWPORT = { width: 1440, height: 900 };
// Autosave (after a quiet second) and validation run after a graph opens; let them finish before panning.
const SETTLE_MS = 2000;

// ---------------------------------------------------------------------------------------------------------------
// Command line

const Args = z.object({
  nodes: z.array(z.number().int().min(3).max(5000)).min(1),
  reps: z.number().int().min(1).max(50),
  panMs: z.number().int().min(500).max(30_000),
  rebuild: z.boolean(),
  json: z.boolean(),
});
type Args = z.infer<typeof Args>;

function parseArgs(argv: string[]): Args {
  const raw: Record<string, unknown> = { nodes: [300, 1000], reps: 3, panMs: 3000, rebuild: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--nodes') raw.nodes = value().split(',').map(Number);
    else if (a === '--reps') raw.reps = Number(value());
    else if (a === '--pan-ms') raw.panMs = Number(value());
    else if (a === '--rebuild') raw.rebuild = true;
    else if (a === '--json') raw.json = true;
    else throw new Error(`unknown option '${a}' (known: --nodes N,M, --reps N, --pan-ms MS, --rebuild, --json)`);
  }
  const parsed = Args.safeParse(raw);
  if (!parsed.success) throw new Error(`bad arguments: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------------------------
// The graph

const TRIPLE = [
  { type: 'encoder.clip_vit', out: 'vision_features' },
  { type: 'projector.mlp', in: 'vision_features', out: 'image_features' },
  { type: 'llm.decoder', in: 'inputs_embeds' },
] as const;
const COLUMNS = 24; // a multiple of 3: every row holds whole triples
const SPACING = { x: 320, y: 220 };

/** N nodes of real catalogue types on a grid; each encoder → projector → decoder triple is wired. */
function benchGraph(n: number): string {
  const nodes = [];
  const edges = [];
  const positions: Record<string, { x: number; y: number }> = {};
  for (let i = 0; i < n; i++) {
    const id = `n${i}`;
    const slot = TRIPLE[i % 3];
    nodes.push({ id, type: slot.type, typeVersion: 1, params: {}, frozen: false, adapters: [] });
    positions[id] = { x: (i % COLUMNS) * SPACING.x, y: Math.floor(i / COLUMNS) * SPACING.y };
    const next = TRIPLE[(i % 3) + 1];
    if (next && 'in' in next && 'out' in slot && i + 1 < n) {
      edges.push({ from: { node: id, port: slot.out }, to: { node: `n${i + 1}`, port: next.in } });
    }
  }
  const text = JSON.stringify({ format: 'composer.graph', version: 1, name: `bench ${n} nodes`, seed: 0, nodes, edges, ui: { positions } });
  parseGraphDocument(text, `bench-${n}.graph.json`); // the host would reject anything this rejects
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// Servers

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

/** The bare page: a production Vite build of bench/ui/bare.html, served as static files on a free port. */
async function startBare(): Promise<Pick<BrowserHost, 'url' | 'stop'>> {
  const outDir = mkdtempSync(join(tmpdir(), 'composer-bench-bare-'));
  await build({
    configFile: false,
    root: BARE_DIR,
    base: './',
    plugins: [react()],
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, rollupOptions: { input: join(BARE_DIR, 'bare.html') } },
  });
  const server: Server = createServer((req, res) => {
    const path = normalize(join(outDir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    if (!path.startsWith(outDir + sep) || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream' });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the bare-page server has no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}/bare.html`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// In-page measurement (strings, so the bundler's helpers never leak into the page)

/** Resolves with ms from the next `change` event to N measured React Flow nodes (read at the following frame). */
const WATCH_FIRST_RENDER = `(n) => new Promise((resolve, reject) => {
  const begun = performance.now();
  let start = null;
  let done = false;
  document.addEventListener('change', () => { start = performance.now(); }, { capture: true, once: true });
  const tick = () => {
    if (done) { resolve(performance.now() - start); return; }
    if (performance.now() - begun > 120000) {
      reject(new Error('fewer than ' + n + ' measured React Flow nodes after 120 s'));
      return;
    }
    if (start !== null) {
      const nodes = document.querySelectorAll('.react-flow__node');
      done = nodes.length >= n && !Array.from(nodes).some((e) => e.style.visibility === 'hidden');
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})`;

/** Drags the empty pane along a figure of eight for ms, one mousemove per frame; counts frames. */
const PAN = `(ms) => new Promise((resolve) => {
  const pane = document.querySelector('.react-flow__pane');
  const viewport = document.querySelector('.react-flow__viewport');
  const before = viewport.style.transform;
  const r = pane.getBoundingClientRect();
  const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const at = (x, y) => ({ bubbles: true, cancelable: true, view: window, clientX: x, clientY: y, button: 0, buttons: 1 });
  pane.dispatchEvent(new MouseEvent('mousedown', at(cx, cy)));
  let frames = 0, moved = false;
  const t0 = performance.now();
  const tick = (now) => {
    const t = now - t0;
    if (t >= ms) {
      window.dispatchEvent(new MouseEvent('mouseup', at(cx, cy)));
      resolve({ fps: (frames * 1000) / t, moved });
      return;
    }
    frames++;
    const a = (t / 1000) * Math.PI;
    window.dispatchEvent(new MouseEvent('mousemove', at(cx + 200 * Math.sin(a), cy + 120 * Math.sin(2 * a))));
    if (viewport.style.transform !== before) moved = true;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})`;

interface Sample {
  firstRenderMs: number;
  fps: number;
}

async function measure(page: Page, n: number, file: string, panMs: number): Promise<Sample> {
  const firstRender = page.evaluate(`(${WATCH_FIRST_RENDER})(${n})`) as Promise<number>;
  await page.getByTestId('open-file-input').setInputFiles(file);
  const firstRenderMs = await firstRender;
  await page.waitForTimeout(SETTLE_MS);
  const pan = (await page.evaluate(`(${PAN})(${panMs})`)) as { fps: number; moved: boolean };
  if (!pan.moved) throw new Error(`${page.url()}: the drag did not pan the canvas (viewport transform unchanged)`);
  return { firstRenderMs, fps: pan.fps };
}

async function measureOurs(browser: Browser, url: string, n: number, file: string, panMs: number): Promise<Sample> {
  const page = await browser.newPage({ viewport: VIEWPORT });
  try {
    await page.goto(url);
    // The catalogue has loaded; a recovery prompt for the previous repetition's autosave is dismissed.
    await page.locator('.palette-item').first().waitFor({ timeout: 30_000 });
    await page.waitForTimeout(500);
    const discard = page.getByRole('button', { name: 'Discard' });
    if (await discard.isVisible()) {
      await discard.click();
      await discard.waitFor({ state: 'hidden' });
    }
    return await measure(page, n, file, panMs);
  } finally {
    await page.close();
  }
}

async function measureBare(browser: Browser, url: string, n: number, file: string, panMs: number): Promise<Sample> {
  const page = await browser.newPage({ viewport: VIEWPORT });
  try {
    await page.goto(url);
    await page.locator('.react-flow__pane').waitFor();
    return await measure(page, n, file, panMs);
  } finally {
    await page.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Row {
  nodes: number;
  reps: number;
  bareFirstRenderMs: number;
  oursFirstRenderMs: number;
  firstRenderRatio: number;
  bareFps: number;
  oursFps: number;
  fpsRatio: number;
  firstRenderOk: boolean;
  fpsOk: boolean;
}

function printTable(rows: Row[]): void {
  const head = ['nodes', 'bare first ms', 'ours first ms', 'ours/bare', `aim ≤${GOAL_FIRST_RENDER}`, 'bare fps', 'ours fps', 'ours/bare', `aim ≥${GOAL_FPS}`];
  const body = rows.map((r) => [
    String(r.nodes),
    r.bareFirstRenderMs.toFixed(0),
    r.oursFirstRenderMs.toFixed(0),
    r.firstRenderRatio.toFixed(2),
    r.firstRenderOk ? 'ok' : 'MISS',
    r.bareFps.toFixed(1),
    r.oursFps.toFixed(1),
    r.fpsRatio.toFixed(2),
    r.fpsOk ? 'ok' : 'MISS',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  for (const line of [head, ...body]) console.log(line.map((c, i) => c.padStart(widths[i])).join('  '));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const note = (s: string) => (args.json ? process.stderr : process.stdout).write(`${s}\n`);
  const stack: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    while (stack.length) await stack.pop()?.().catch((e: unknown) => note(`cleanup: ${String(e)}`));
  };
  const onSignal = () => void stopAll().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const graphDir = mkdtempSync(join(tmpdir(), 'composer-bench-graphs-'));
    stack.push(async () => rmSync(graphDir, { recursive: true, force: true }));
    const files = new Map<number, string>();
    for (const n of args.nodes) {
      const path = join(graphDir, `bench-${n}.graph.json`);
      writeFileSync(path, benchGraph(n));
      files.set(n, path);
    }

    if (!args.rebuild && existsSync(RENDERER_DIST)) {
      const ageMin = (Date.now() - statSync(RENDERER_DIST).mtimeMs) / 60_000;
      note(`using the existing dist/renderer (built ${ageMin.toFixed(0)} min ago; --rebuild to rebuild it)`);
    }
    const host = await startBrowserHost({ cwd: ROOT, rebuild: args.rebuild, label: 'bench-ui' });
    stack.push(host.stop);
    const bare = await startBare();
    stack.push(bare.stop);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
    stack.push(() => browser.close());

    // One untimed load of each page warms the HTTP caches and the host's catalogue.
    const warm = files.get(args.nodes[0]) ?? '';
    await measureBare(browser, bare.url, args.nodes[0], warm, 500);
    await measureOurs(browser, host.url, args.nodes[0], warm, 500);

    const rows: Row[] = [];
    for (const n of args.nodes) {
      const file = files.get(n) ?? '';
      const bareSamples: Sample[] = [];
      const oursSamples: Sample[] = [];
      for (let rep = 0; rep < args.reps; rep++) {
        bareSamples.push(await measureBare(browser, bare.url, n, file, args.panMs));
        oursSamples.push(await measureOurs(browser, host.url, n, file, args.panMs));
        const [b, o] = [bareSamples[rep], oursSamples[rep]];
        note(`  ${n} nodes rep ${rep + 1}: bare ${b.firstRenderMs.toFixed(0)} ms ${b.fps.toFixed(1)} fps | ours ${o.firstRenderMs.toFixed(0)} ms ${o.fps.toFixed(1)} fps`);
      }
      const bareFirst = median(bareSamples.map((s) => s.firstRenderMs));
      const oursFirst = median(oursSamples.map((s) => s.firstRenderMs));
      const bareFps = median(bareSamples.map((s) => s.fps));
      const oursFps = median(oursSamples.map((s) => s.fps));
      const row: Row = {
        nodes: n,
        reps: args.reps,
        bareFirstRenderMs: bareFirst,
        oursFirstRenderMs: oursFirst,
        firstRenderRatio: oursFirst / bareFirst,
        bareFps,
        oursFps,
        fpsRatio: oursFps / bareFps,
        firstRenderOk: oursFirst / bareFirst <= GOAL_FIRST_RENDER,
        fpsOk: oursFps / bareFps >= GOAL_FPS,
      };
      rows.push(row);
      if (args.json) console.log(JSON.stringify(row));
    }
    if (!args.json) {
      console.log(`\nmedians over ${args.reps} alternating runs; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
      printTable(rows);
    }
  } finally {
    await stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
