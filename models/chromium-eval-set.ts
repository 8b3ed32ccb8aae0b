// Draws the held-out evaluation set in headless Chromium, a renderer the zoo's training never uses (training pictures
// come from datasets/shapes.ts's rasteriser and librsvg): single circles, squares and triangles on plain
// backgrounds, drawn with Canvas 2D, CSS or inline SVG, filled or outlined, rotated, with and without anti-aliasing,
// in CSS colours near (not equal to) the training palette, 96–128 px, on off-white, grey, pastel or gradient
// backgrounds; some blurred and/or JPEG-compressed afterwards by sharp. Every picture's parameters are drawn from the
// seed; the pictures and labels.json are committed (models/eval-chromium/), so evaluating needs no browser.
//
//   npx tsx models/chromium-eval-set.ts [--seed N] [--per-class N] [--out DIR]

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { chromium } from 'playwright-core';
import { SHAPE_COLORS, SHAPE_KINDS, type ShapeColor, type ShapeKind } from '../electron/engine/datasets/index.js';
import { hashBytes } from '../electron/engine/keys.js';
import { Rng } from '../electron/engine/rng.js';
import { writeFileAtomic } from '../electron/onnx/atomic.js';
import { CHROMIUM_ARGS } from '../e2e/browser-host.js';
import { CHROMIUM_EVAL_DIR, EVAL_SET_LABELS, type EvalSet, type EvalSetImage, EvalSetSchema } from './eval-set.js';

/** CSS colours people pick for each colour name: none is the training palette's exact value. */
const CSS_COLORS: Readonly<Record<ShapeColor, readonly string[]>> = {
  red: ['#e53935', '#d32f2f', 'crimson', '#f44336', '#c62828', 'rgb(200, 30, 30)'],
  green: ['#43a047', '#2e7d32', 'forestgreen', '#4caf50', '#388e3c', 'rgb(20, 140, 70)'],
  blue: ['#1e88e5', '#1565c0', 'royalblue', '#2962ff', '#3949ab', 'rgb(30, 60, 200)'],
  yellow: ['#fdd835', '#fbc02d', 'gold', '#ffeb3b', '#f9d71c', 'rgb(240, 200, 0)'],
  purple: ['#8e24aa', '#7b1fa2', 'rebeccapurple', '#9c27b0', '#6a1b9a', 'rgb(120, 40, 160)'],
  orange: ['#fb8c00', '#f57c00', 'darkorange', '#ff9800', '#ef6c00', 'rgb(245, 110, 10)'],
};

type Spec = Omit<EvalSetImage, 'file' | 'sha256'>;

function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number): number => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number): number => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [Math.round(f(0) * 255), Math.round(f(8) * 255), Math.round(f(4) * 255)];
}

function drawBackground(rng: Rng): { background: Spec['background']; backgroundRgb: [number, number, number] } {
  const u = rng.uniform();
  if (u < 0.4) {
    const base = 238 + rng.int(16);
    const t = (): number => Math.min(255, base + rng.int(9) - 4);
    return { background: 'off-white', backgroundRgb: [t(), t(), t()] };
  }
  if (u < 0.6) {
    const g = 195 + rng.int(35);
    return { background: 'grey', backgroundRgb: [g, g, g] };
  }
  const pastel = hslToRgb(rng.range(0, 360), rng.range(0.3, 0.7), rng.range(0.84, 0.93));
  return { background: u < 0.85 ? 'pastel' : 'gradient', backgroundRgb: pastel };
}

/** Every picture's parameters, balanced over the 18 colour × shape classes, from the seed alone. */
export function drawSpecs(seed: number, perClass: number): Spec[] {
  const rng = new Rng(seed).fork('chromium-eval-set');
  const specs: Spec[] = [];
  for (let rep = 0; rep < perClass; rep++) {
    for (const color of SHAPE_COLORS) {
      for (const shape of SHAPE_KINDS) {
        const side = 96 + rng.int(33);
        const width = side, height = side;
        const radius = rng.range(0.2, 0.36);
        const r = radius * side;
        const margin = r + 3;
        const cx = rng.range(margin, width - margin);
        const cy = rng.range(margin, height - margin);
        const u = rng.uniform();
        const renderer: Spec['renderer'] = u < 0.4 ? 'canvas' : u < 0.7 ? 'css' : 'svg';
        const outlined = rng.uniform() < 0.35;
        const antialias = renderer === 'css' ? true : rng.uniform() >= 0.3;
        const rotation = shape === 'circle' ? 0 : shape === 'triangle' ? rng.range(0, 360) : rng.uniform() < 0.6 ? 0 : rng.range(-40, 40);
        const blur = rng.uniform() < 0.3;
        const jpeg = rng.uniform() < 0.35;
        specs.push({
          color, shape, css: rng.pick(CSS_COLORS[color]), width, height,
          // CSS cannot outline a clip-path triangle: an outlined CSS triangle is drawn as inline SVG.
          renderer: renderer === 'css' && shape === 'triangle' && outlined ? 'svg' : renderer,
          fill: outlined ? 'outlined' : 'filled',
          ...(outlined ? { lineWidth: Math.round(rng.range(2, Math.max(3, side / 18)) * 2) / 2 } : {}),
          antialias,
          ...drawBackground(rng),
          radius: Math.round(radius * 1000) / 1000, cx: Math.round(cx * 10) / 10, cy: Math.round(cy * 10) / 10,
          rotation: Math.round(rotation * 10) / 10,
          ...(shape === 'triangle' ? { triangle: rng.uniform() < 0.75 ? 'equilateral' as const : 'isosceles' as const } : {}),
          ...(blur ? { blurSigma: Math.round(rng.range(0.5, 1.5) * 100) / 100 } : {}),
          ...(jpeg ? { jpegQuality: 35 + rng.int(51) } : {}),
        });
      }
    }
  }
  return specs;
}

/** Vertices of the shape (square, triangle) in pixels, rotated about its centre. */
function vertices(s: Spec): Array<[number, number]> {
  const r = s.radius * Math.min(s.width, s.height);
  const rot = (s.rotation * Math.PI) / 180;
  let pts: Array<[number, number]>;
  if (s.shape === 'square') {
    const h = r * 0.8;
    pts = [[-h, -h], [h, -h], [h, h], [-h, h]];
  } else if (s.triangle === 'isosceles') {
    pts = [[0, -r], [r * 0.6, r * 0.8], [-r * 0.6, r * 0.8]];
  } else {
    pts = [0, 1, 2].map((i) => [r * Math.sin((2 * Math.PI * i) / 3), -r * Math.cos((2 * Math.PI * i) / 3)] as [number, number]);
  }
  return pts.map(([x, y]) => [s.cx + x * Math.cos(rot) - y * Math.sin(rot), s.cy + x * Math.sin(rot) + y * Math.cos(rot)]);
}

const rgbCss = (c: readonly number[]): string => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

function backgroundCss(s: Spec): string {
  if (s.background !== 'gradient') return rgbCss(s.backgroundRgb);
  const darker = s.backgroundRgb.map((v) => Math.max(0, v - 28));
  return `linear-gradient(160deg, ${rgbCss(s.backgroundRgb)}, ${rgbCss(darker)})`;
}

/** A page whose body is exactly the picture. */
function page(s: Spec, inner: string): string {
  return `<!doctype html><html><head><style>html,body{margin:0;padding:0;overflow:hidden}`
    + `#pic{position:relative;width:${s.width}px;height:${s.height}px;background:${backgroundCss(s)};overflow:hidden}</style></head>`
    + `<body><div id="pic">${inner}</div></body></html>`;
}

function canvasHtml(s: Spec): string {
  // Without anti-aliasing: drawn on a canvas a third the size and scaled up with smoothing off (hard stair edges).
  const scale = s.antialias ? 1 : 3;
  const w = Math.ceil(s.width / scale), h = Math.ceil(s.height / scale);
  const r = (s.radius * Math.min(s.width, s.height)) / scale;
  const pts = s.shape === 'circle' ? [] : vertices(s).map(([x, y]) => [x / scale, y / scale]);
  // A block: setContent rewrites the same window, whose top-level const bindings would clash from page to page.
  const script = `{
    const c = document.createElement('canvas'); c.width = ${w}; c.height = ${h};
    const g = c.getContext('2d');
    g.beginPath();
    ${s.shape === 'circle' ? `g.arc(${s.cx / scale}, ${s.cy / scale}, ${r}, 0, Math.PI * 2);` : `const p = ${JSON.stringify(pts)}; g.moveTo(p[0][0], p[0][1]); for (const q of p.slice(1)) g.lineTo(q[0], q[1]); g.closePath();`}
    ${s.fill === 'filled' ? `g.fillStyle = ${JSON.stringify(s.css)}; g.fill();` : `g.strokeStyle = ${JSON.stringify(s.css)}; g.lineWidth = ${(s.lineWidth ?? 2) / scale}; g.lineJoin = 'miter'; g.stroke();`}
    const out = document.getElementById('out');
    const o = out.getContext('2d'); o.imageSmoothingEnabled = false;
    o.drawImage(c, 0, 0, ${w * scale}, ${h * scale});
    document.body.dataset.ready = '1';
  }`;
  return page(s, `<canvas id="out" width="${s.width}" height="${s.height}" style="position:absolute;left:0;top:0"></canvas><script>${script}</script>`);
}

function svgHtml(s: Spec): string {
  const paint = s.fill === 'filled' ? `fill="${s.css}"` : `fill="none" stroke="${s.css}" stroke-width="${s.lineWidth ?? 2}" stroke-linejoin="miter"`;
  const r = s.radius * Math.min(s.width, s.height);
  const body = s.shape === 'circle'
    ? `<circle cx="${s.cx}" cy="${s.cy}" r="${r}" ${paint}/>`
    : `<polygon points="${vertices(s).map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join(' ')}" ${paint}/>`;
  return page(s, `<svg xmlns="http://www.w3.org/2000/svg" width="${s.width}" height="${s.height}" style="position:absolute;left:0;top:0"`
    + ` shape-rendering="${s.antialias ? 'geometricPrecision' : 'crispEdges'}">${body}</svg>`);
}

function cssHtml(s: Spec): string {
  const r = s.radius * Math.min(s.width, s.height);
  if (s.shape === 'triangle') {
    // A clip-path polygon on a box over the whole picture (filled only; see drawSpecs).
    const pts = vertices(s).map(([x, y]) => `${x.toFixed(2)}px ${y.toFixed(2)}px`).join(', ');
    return page(s, `<div style="position:absolute;left:0;top:0;width:${s.width}px;height:${s.height}px;background:${s.css};clip-path:polygon(${pts})"></div>`);
  }
  const half = s.shape === 'circle' ? r : r * 0.8;
  const lw = s.lineWidth ?? 0;
  const paint = s.fill === 'filled' ? `background:${s.css}` : `border:${lw}px solid ${s.css}`;
  return page(s, `<div style="position:absolute;box-sizing:border-box;left:${(s.cx - half).toFixed(2)}px;top:${(s.cy - half).toFixed(2)}px;`
    + `width:${(2 * half).toFixed(2)}px;height:${(2 * half).toFixed(2)}px;${paint};`
    + `${s.shape === 'circle' ? 'border-radius:50%;' : ''}transform:rotate(${s.rotation}deg)"></div>`);
}

export function specHtml(s: Spec): string {
  return s.renderer === 'canvas' ? canvasHtml(s) : s.renderer === 'svg' ? svgHtml(s) : cssHtml(s);
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string, fallback: string): string => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
  const seed = Number(arg('--seed', '15'));
  const perClass = Number(arg('--per-class', '5'));
  const out = resolve(arg('--out', CHROMIUM_EVAL_DIR));
  if (!Number.isInteger(seed) || !Number.isInteger(perClass) || perClass < 1) throw new Error('--seed and --per-class: integers (per-class ≥ 1)');
  const specs = drawSpecs(seed, perClass);
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) if (/\.(png|jpg)$/.test(f)) rmSync(join(out, f));
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
  const images: EvalSetImage[] = [];
  try {
    const context = await browser.newContext({ deviceScaleFactor: 1, viewport: { width: 256, height: 256 } });
    const tab = await context.newPage();
    for (const [i, s] of specs.entries()) {
      await tab.setViewportSize({ width: s.width, height: s.height });
      await tab.setContent(specHtml(s));
      if (s.renderer === 'canvas') await tab.waitForFunction(() => document.body.dataset.ready === '1');
      const shot = await tab.locator('#pic').screenshot({ type: 'png', animations: 'disabled' });
      let img = sharp(shot).removeAlpha();
      if (s.blurSigma) img = img.blur(s.blurSigma);
      const bytes = s.jpegQuality ? await img.jpeg({ quality: s.jpegQuality }).toBuffer() : await img.png().toBuffer();
      const file = `${String(i).padStart(3, '0')}-${s.color}-${s.shape}.${s.jpegQuality ? 'jpg' : 'png'}`;
      writeFileSync(join(out, file), bytes);
      images.push({ file, sha256: hashBytes(bytes), ...s });
    }
    const set: EvalSet = EvalSetSchema.parse({
      format: 'composer.eval-set', version: 1, name: 'chromium single shapes',
      renderer: `headless Chromium ${browser.version()} (Canvas 2D, CSS, inline SVG) + sharp blur/JPEG`, seed, images,
    });
    writeFileAtomic(join(out, EVAL_SET_LABELS), `${JSON.stringify(set, null, 1)}\n`);
    console.log(`${images.length} pictures in ${out}`);
  } finally {
    await browser.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  await main(process.argv.slice(2));
}
