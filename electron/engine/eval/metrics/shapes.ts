// What the built-in shapes data lets a metric read off an answer or a picture: the colour and shape a caption names
// (its first colour word and first shape word), and the colour and shape a drawing shows, read off its pixels. The
// zoo's accuracy tables (models/zoo-eval.ts) and `vlmc eval` on shapes use these.

import { SHAPE_COLORS, SHAPE_KINDS, SHAPE_PALETTE } from '../../datasets/shapes.js';
import type { RgbImage } from '../../image.js';

/** The first of `words` the text names (plurals count), or undefined. */
export function firstOf(text: string, words: readonly string[]): string | undefined {
  const tokens = text.toLowerCase().match(/[a-z]+/g) ?? [];
  for (const t of tokens) {
    const w = words.find((x) => t === x || t === `${x}s`);
    if (w) return w;
  }
  return undefined;
}

export interface Judged {
  color: boolean;
  shape: boolean;
}

export function judge(text: string, color: string, shape: string): Judged {
  return { color: firstOf(text, SHAPE_COLORS) === color, shape: firstOf(text, SHAPE_KINDS) === shape };
}

/** Channel distance from the background above which a pixel belongs to the drawn shape. */
const SHAPE_CONTRAST = 60;

/**
 * What a drawing of one shape on a light background shows, read off its pixels: the palette colour most shape pixels
 * are nearest to, and the shape whose outline fitted to the largest blob's bounding box overlaps it best. The
 * background is the median border colour. Undefined when nothing stands out from it.
 */
export function readDrawing(img: RgbImage): { color?: string; shape?: string } {
  const { width: W, height: H, data } = img;
  const border: number[][] = [[], [], []];
  for (let i = 0; i < W * H; i++) {
    const x = i % W, y = Math.floor(i / W);
    if (x === 0 || y === 0 || x === W - 1 || y === H - 1) for (let c = 0; c < 3; c++) border[c].push(data[3 * i + c]);
  }
  const bg = border.map((v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)]);
  const mask = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) {
    const d = Math.max(...[0, 1, 2].map((c) => Math.abs(data[3 * i + c] - bg[c])));
    mask[i] = d > SHAPE_CONTRAST ? 1 : 0;
  }
  // Largest 4-connected blob: stray noise pixels must not stretch the bounding box.
  const label = new Int32Array(W * H).fill(-1);
  let best: number[] = [];
  for (let start = 0; start < W * H; start++) {
    if (!mask[start] || label[start] >= 0) continue;
    const blob: number[] = [];
    const stack = [start];
    label[start] = start;
    while (stack.length) {
      const p = stack.pop()!;
      blob.push(p);
      const x = p % W, y = Math.floor(p / W);
      for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]]) {
        const q = ny * W + nx;
        if (nx >= 0 && ny >= 0 && nx < W && ny < H && mask[q] && label[q] < 0) (label[q] = start), stack.push(q);
      }
    }
    if (blob.length > best.length) best = blob;
  }
  if (best.length < (W * H) / 200) return {};
  const counts = new Map<string, number>();
  let [x0, y0, x1, y1] = [W, H, 0, 0];
  for (const p of best) {
    const x = p % W, y = Math.floor(p / W);
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
    let nearest = '';
    let dist = Infinity;
    for (const c of SHAPE_COLORS) {
      const q = SHAPE_PALETTE[c];
      const d = (data[3 * p] - q[0]) ** 2 + (data[3 * p + 1] - q[1]) ** 2 + (data[3 * p + 2] - q[2]) ** 2;
      if (d < dist) (dist = d), (nearest = c);
    }
    counts.set(nearest, (counts.get(nearest) ?? 0) + 1);
  }
  const color = [...counts].sort((a, b) => b[1] - a[1])[0][0];
  // The outline that overlaps the blob best (IoU) over its bounding box: the box itself, the inscribed ellipse, or the
  // upward triangle with its apex at the top centre (as the dataset draws them).
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const inside: Record<string, (u: number, v: number) => boolean> = {
    square: () => true,
    circle: (u, v) => (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25,
    triangle: (u, v) => Math.abs(u - 0.5) <= v / 2,
  };
  const blob = new Set(best);
  let shape = '';
  let bestIou = -1;
  for (const [kind, test] of Object.entries(inside)) {
    let both = 0, either = 0;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const a = blob.has(y * W + x), b = test((x - x0 + 0.5) / w, (y - y0 + 0.5) / h);
        both += a && b ? 1 : 0;
        either += a || b ? 1 : 0;
      }
    }
    if (both / either > bestIou) (bestIou = both / either), (shape = kind);
  }
  return { color, shape };
}
