/**
 * The built-in procedural "shapes" dataset: small RGB images of one to three shapes (circle, square, triangle) in six
 * colours, small or large, at one of five positions, on a light noisy background. Everything about a sample (scene,
 * pixels, caption, VQA pairs, conversation) is a pure function of (seed, split, index).
 *
 * Train and eval are disjoint by *scene*: a scene's split is a fixed hash of its canonical description (independent
 * of the seed), so no eval caption ever occurs in training, whatever seeds the two sides use.
 */
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { z } from 'zod';
import { type ImageDegradation, type RgbImage, encodePng } from '../image.js';
import { Rng, hashString } from '../rng.js';
import { DatasetError, IMAGE_PLACEHOLDER, type QaPair, type Sample, type Turn } from './types.js';

export const SHAPE_KINDS = ['circle', 'square', 'triangle'] as const;
export const SHAPE_COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
export const SHAPE_SIZES = ['small', 'large'] as const;
export const SHAPE_POSITIONS = ['left', 'right', 'top', 'bottom', 'center'] as const;

export type ShapeKind = (typeof SHAPE_KINDS)[number];
export type ShapeColor = (typeof SHAPE_COLORS)[number];
export type ShapeSize = (typeof SHAPE_SIZES)[number];
export type ShapePosition = (typeof SHAPE_POSITIONS)[number];

export const SHAPE_PALETTE: Readonly<Record<ShapeColor, readonly [number, number, number]>> = {
  red: [215, 40, 40],
  green: [40, 160, 60],
  blue: [40, 80, 215],
  yellow: [230, 195, 25],
  purple: [135, 55, 175],
  orange: [240, 125, 25],
};

/** Shape centres as fractions of the image side. */
const POSITION_CENTRES: Readonly<Record<ShapePosition, readonly [number, number]>> = {
  left: [0.22, 0.5],
  right: [0.78, 0.5],
  top: [0.5, 0.22],
  bottom: [0.5, 0.78],
  center: [0.5, 0.5],
};
/** Radius of the circle each shape fits in, as a fraction of the image side. */
const SIZE_RADIUS: Readonly<Record<ShapeSize, number>> = { small: 0.07, large: 0.12 };
/** Jitter keeps shapes from sitting on exact pixel positions; small enough that neighbours never overlap. */
const POSITION_JITTER = 0.015;
const RADIUS_JITTER = 0.05;

const POSITION_PHRASE: Readonly<Record<ShapePosition, string>> = {
  left: 'on the left',
  right: 'on the right',
  top: 'at the top',
  bottom: 'at the bottom',
  center: 'in the center',
};
const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five'];
const DESCRIBE_PROMPTS = ['Describe the image.', 'What is in the picture?', 'Write a short caption for this image.'];

export interface ShapeSpec {
  shape: ShapeKind;
  color: ShapeColor;
  size: ShapeSize;
  position: ShapePosition;
}

/**
 * A shape with its exact geometry, in fractions of the image side (so a scene renders at any size); the optional
 * fields are how a 'variety' sample departs from the plain drawing (upright, filled, in the palette colour).
 */
export interface PlacedShape extends ShapeSpec {
  cx: number;
  cy: number;
  radius: number;
  /** Clockwise rotation in radians (squares and triangles). */
  rotation?: number;
  /** Triangles: a taller isosceles one instead of the equilateral one. */
  form?: 'isosceles';
  /** Drawn as an outline this wide (fraction of the side) instead of filled. */
  outline?: number;
  /** The colour actually drawn, near the palette colour of `color`. */
  rgb?: [number, number, number];
}

export interface ShapeScene {
  shapes: PlacedShape[];
  background: [number, number, number];
  /** A diagonal gradient from `background` (top left) to this colour (bottom right). */
  backgroundTo?: [number, number, number];
  /** Per-pixel Gaussian noise (in 0..255 units) and the seed that draws it. */
  noiseStd: number;
  noiseSeed: number;
  /** Samples per pixel side at shape edges (default 4; 1 draws without anti-aliasing). */
  supersample?: number;
  /** Width / height; the shorter side is the side asked for and the shapes lie in its centred square (default 1). */
  aspect?: number;
}

export interface ShapeSample extends Sample {
  image: RgbImage;
  caption: string;
  qa: QaPair[];
  conversations: Turn[];
  description: ShapeSpec[];
  scene: ShapeScene;
  split: ShapesSplit;
}

export type ShapesSplit = 'train' | 'eval';

export const ShapesOptionsSchema = z.object({
  seed: z.union([z.number().int(), z.string()]).default(0),
  /** Image side in pixels. */
  size: z.number().int().min(8).max(4096).default(64),
  minShapes: z.number().int().min(1).max(SHAPE_POSITIONS.length).default(1),
  maxShapes: z.number().int().min(1).max(SHAPE_POSITIONS.length).default(3),
  split: z.enum(['train', 'eval']).default('train'),
  /** Fraction of all scenes that belong to eval. */
  evalFraction: z.number().gt(0).lt(1).default(0.1),
  numSamples: z.number().int().min(1).default(1000),
  noiseStd: z.number().min(0).max(64).default(3),
  /** Restrict the vocabulary (e.g. only circles); default: everything. */
  shapes: z.array(z.enum(SHAPE_KINDS)).min(1).optional(),
  colors: z.array(z.enum(SHAPE_COLORS)).min(1).optional(),
  sizes: z.array(z.enum(SHAPE_SIZES)).min(1).optional(),
  positions: z.array(z.enum(SHAPE_POSITIONS)).min(1).optional(),
  /** Extra VQA turns appended to each conversation after the description turn. */
  qaTurns: z.number().int().min(0).default(0),
  /**
   * 'full': every caption names size, colour, shape and position. 'varied': each sample's caption names a random
   * subset (always colour and shape), as several human captions of one image would; contrastive training needs it,
   * because with full captions size and position alone tell a batch's images apart and shape is never learned.
   */
  captionStyle: z.enum(['full', 'varied']).default('full'),
  /**
   * Draw every shape this many times larger about the image centre (positions move out with it). For generators
   * that train at a low resolution: at 32×32 a large shape is 8 px across, too few to tell a triangle from a circle.
   */
  zoom: z.number().min(1).max(4).default(1),
  /**
   * Fraction of samples whose picture is degraded the way copies of a picture are (training augmentation): drawn at
   * another side (40–128 px; the model's image step resamples it), blurred (σ 0.3–1 px) and/or JPEG re-encoded
   * (quality 50–95). Drawn per sample from the seed, so a sample is the same picture every epoch. Harsher ranges
   * (24–160 px, σ up to 1.4, quality down to 25) made the zoo's contrastive encoder worse on clean pictures too.
   */
  augment: z.number().min(0).max(1).default(0),
  /**
   * Fraction of *training* samples drawn the way other programs draw (varyScene): a lone shape up to about three
   * times larger, triangles rotated (and some isosceles), squares tilted, outlines as well as fills, the colour off
   * the palette by a little, no or coarser anti-aliasing, off-white / grey / pastel / gradient backgrounds with
   * 0–8 noise, other aspect ratios; then drawn at 32–256 px, blurred (σ 0.3–1.5) and/or JPEG (quality 35–90).
   * Drawn per sample from a stream of its own, so the other samples, every caption and the eval split are unchanged
   * and a sample is the same picture every epoch (cached frozen features stay valid). Such a sample's degradation
   * replaces `augment`'s.
   */
  variety: z.number().min(0).max(1).default(0),
}).strict()
  .refine((o) => o.minShapes <= o.maxShapes, { message: 'minShapes must not exceed maxShapes', path: ['minShapes'] })
  .refine((o) => o.maxShapes <= (o.positions ?? SHAPE_POSITIONS).length, { message: 'maxShapes must not exceed the number of positions', path: ['maxShapes'] });
export type ShapesOptionsInput = z.input<typeof ShapesOptionsSchema>;
export type ShapesOptions = z.output<typeof ShapesOptionsSchema>;

// ---- language ---------------------------------------------------------------------------------------------------

function phrase(s: ShapeSpec): string {
  return `a ${s.size} ${s.color} ${s.shape} ${POSITION_PHRASE[s.position]}`;
}

/** The shorter phrasings of a 'varied' caption: colour and shape always, size and position sometimes. */
const VARIED_PHRASES: ReadonlyArray<(s: ShapeSpec) => string> = [
  phrase,
  (s) => `a ${s.color} ${s.shape}`,
  (s) => `a ${s.size} ${s.color} ${s.shape}`,
  (s) => `a ${s.color} ${s.shape} ${POSITION_PHRASE[s.position]}`,
];

/** "a small red circle on the left", "… and …", "…, … and …". */
export function captionFor(shapes: readonly ShapeSpec[]): string {
  return joinPhrases(shapes.map(phrase));
}

/** A 'varied' caption: each shape in one of the VARIED_PHRASES, drawn from `rng`. */
function variedCaptionFor(shapes: readonly ShapeSpec[], rng: Rng): string {
  return joinPhrases(shapes.map((s) => rng.pick(VARIED_PHRASES)(s)));
}

/**
 * Reference captions of a scene, as several people would write them (COCO has five per image): every shape in
 * each of the VARIED_PHRASES in turn, so the full caption first and then the shorter phrasings. Eval scores
 * predictions against all of them.
 */
export function referenceCaptionsFor(shapes: readonly ShapeSpec[]): string[] {
  return [...new Set(VARIED_PHRASES.map((p) => joinPhrases(shapes.map(p))))];
}

function joinPhrases(parts: readonly string[]): string {
  if (parts.length === 0) throw new DatasetError('a shapes caption needs at least one shape');
  if (parts.length === 1) return parts[0];
  return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

/** Canonical, order-independent scene key: what decides the split. */
export function sceneKey(shapes: readonly ShapeSpec[]): string {
  return shapes.map((s) => `${s.position}:${s.size}:${s.color}:${s.shape}`).sort().join('|');
}

export function splitOfScene(shapes: readonly ShapeSpec[], evalFraction: number): ShapesSplit {
  return hashString(`shapes-split|${sceneKey(shapes)}`) / 4294967296 < evalFraction ? 'eval' : 'train';
}

/**
 * Questions whose answers follow from the description. When a question would be ambiguous (two circles, say) it
 * names the position too.
 */
export function questionsFor(shapes: readonly ShapeSpec[]): QaPair[] {
  const qa: QaPair[] = [{ question: 'how many shapes are there?', answer: NUMBER_WORDS[shapes.length] ?? String(shapes.length) }];
  const countKind = (k: ShapeKind): number => shapes.filter((s) => s.shape === k).length;
  const countKindColor = (s: ShapeSpec): number => shapes.filter((o) => o.shape === s.shape && o.color === s.color).length;
  for (const s of shapes) {
    const where = POSITION_PHRASE[s.position];
    qa.push({ question: `what shape is ${where}?`, answer: s.shape });
    qa.push({ question: countKind(s.shape) === 1 ? `what color is the ${s.shape}?` : `what color is the ${s.shape} ${where}?`, answer: s.color });
    const unique = countKindColor(s) === 1;
    qa.push({ question: unique ? `what size is the ${s.color} ${s.shape}?` : `what size is the ${s.color} ${s.shape} ${where}?`, answer: s.size });
    if (unique) qa.push({ question: `where is the ${s.color} ${s.shape}?`, answer: s.position });
  }
  for (const k of SHAPE_KINDS) qa.push({ question: `is there a ${k}?`, answer: countKind(k) > 0 ? 'yes' : 'no' });
  return qa;
}

// ---- scene sampling -------------------------------------------------------------------------------------------

function drawDescription(rng: Rng, o: ShapesOptions): ShapeSpec[] {
  const count = o.minShapes + rng.int(o.maxShapes - o.minShapes + 1);
  const positions = rng.shuffle([...(o.positions ?? SHAPE_POSITIONS)]).slice(0, count);
  const kinds = o.shapes ?? SHAPE_KINDS;
  const colors = o.colors ?? SHAPE_COLORS;
  return positions.map((position) => ({
    shape: rng.pick(kinds),
    color: rng.pick(colors),
    size: rng.pick(o.sizes ?? SHAPE_SIZES),
    position,
  }));
}

function placeShapes(rng: Rng, description: readonly ShapeSpec[], zoom: number): PlacedShape[] {
  return description.map((s) => {
    const [x, y] = POSITION_CENTRES[s.position];
    const cx = x + rng.range(-POSITION_JITTER, POSITION_JITTER);
    const cy = y + rng.range(-POSITION_JITTER, POSITION_JITTER);
    const radius = SIZE_RADIUS[s.size] * (1 + rng.range(-RADIUS_JITTER, RADIUS_JITTER));
    return { ...s, cx: 0.5 + (cx - 0.5) * zoom, cy: 0.5 + (cy - 0.5) * zoom, radius: radius * zoom };
  });
}

function drawBackground(rng: Rng): [number, number, number] {
  const base = 228 + rng.int(20); // light grey …
  const tint = (): number => Math.min(255, base + rng.int(13) - 6); // … with a faint tint
  return [tint(), tint(), tint()];
}

/** HSL (h in degrees, s and l in 0..1) to RGB bytes. */
function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number): number => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number): number => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [Math.round(f(0) * 255), Math.round(f(8) * 255), Math.round(f(4) * 255)];
}

/** How far a shape reaches from its centre, in units of its radius, at any rotation. */
const EXTENT: Readonly<Record<ShapeKind, number>> = { circle: 1, square: 0.88 * Math.SQRT2, triangle: 1.15 };
/** Upper bound on a lone large shape's growth (0.12 → about 0.38 of the side); a small one stays below large. */
const VARIED_GROWTH: Readonly<Record<ShapeSize, number>> = { small: 1.5, large: 3.2 };
/** How far a grown shape may reach from its centre, as a fraction of the side. */
const VARIED_REACH = 0.4;

/**
 * The plain scene as another program might draw it (the `variety` option): what the caption says (colour, shape,
 * size, position, count) stays true, everything else about the drawing varies. A lone shape may grow (a large one to
 * reach up to 0.4 of the side, a small one by at most 1.5×, so it stays smaller than any large one); several shapes
 * keep their size so they never overlap.
 */
export function varyScene(rng: Rng, plain: ShapeScene): ShapeScene {
  const single = plain.shapes.length === 1;
  const shapes = plain.shapes.map((s): PlacedShape => {
    const out: PlacedShape = { ...s };
    const growth = rng.range(1, VARIED_GROWTH[s.size]);
    if (single) {
      // Grown up to 0.4 of the side from its centre, then moved in as far as it must to stay in the picture: it
      // stays on its side of the centre, so the caption's position holds.
      out.radius = Math.min(s.radius * growth, VARIED_REACH / EXTENT[s.shape]);
      const reach = out.radius * EXTENT[s.shape] + 0.02;
      out.cx = Math.min(Math.max(s.cx, reach), 1 - reach);
      out.cy = Math.min(Math.max(s.cy, reach), 1 - reach);
    }
    const turn = rng.uniform();
    if (s.shape === 'triangle' && turn < 0.75) out.rotation = rng.range(0, 2 * Math.PI);
    if (s.shape === 'square' && turn < 0.4) out.rotation = rng.range(-Math.PI / 4, Math.PI / 4);
    if (s.shape === 'triangle' && rng.uniform() < 0.2) out.form = 'isosceles';
    if (rng.uniform() < 0.35) out.outline = Math.min(rng.range(0.02, 0.06), out.radius * 0.35);
    const [r, g, b] = SHAPE_PALETTE[s.color];
    const jitter = (v: number): number => Math.max(0, Math.min(255, v + rng.int(37) - 18));
    out.rgb = [jitter(r), jitter(g), jitter(b)];
    return out;
  });
  const u = rng.uniform();
  let background: [number, number, number];
  let backgroundTo: [number, number, number] | undefined;
  if (u < 0.4) {
    const base = 236 + rng.int(18);
    const t = (): number => Math.min(255, base + rng.int(9) - 4);
    background = [t(), t(), t()];
  } else if (u < 0.6) {
    const g = 190 + rng.int(41);
    background = [g, g, g];
  } else {
    background = hslToRgb(rng.range(0, 360), rng.range(0.3, 0.7), rng.range(0.82, 0.93));
    if (u >= 0.85) {
      const d = 15 + rng.int(21);
      backgroundTo = [Math.max(0, background[0] - d), Math.max(0, background[1] - d), Math.max(0, background[2] - d)];
    }
  }
  const noiseStd = rng.uniform() < 0.4 ? 0 : rng.range(1, 8);
  const aa = rng.uniform();
  const supersample = aa < 0.25 ? 1 : aa < 0.4 ? 2 : 4;
  const stretch = rng.uniform() < 0.25 ? rng.range(1.05, 1.4) : 1;
  const aspect = stretch === 1 ? 1 : rng.uniform() < 0.5 ? stretch : 1 / stretch;
  return {
    shapes, background, ...(backgroundTo ? { backgroundTo } : {}), noiseStd, noiseSeed: plain.noiseSeed, supersample,
    ...(aspect !== 1 ? { aspect } : {}),
  };
}

// ---- rasteriser -----------------------------------------------------------------------------------------------

/** Half side of a square and circumradius of a triangle relative to the shape's radius (similar visual areas). */
const SQUARE_HALF = 0.88;
const TRIANGLE_CIRCUM = 1.15;

/**
 * Signed distance (pixels; negative inside) of a point to the shape, or a bound that is exact inside and never
 * larger than the true distance outside (the triangle's edge-line distance). Pixels farther than half a diagonal
 * from the boundary are fully in or out; only the rest are supersampled.
 */
type SignedDistance = (x: number, y: number) => number;

/**
 * Vertices (pixels, clockwise on screen) of a square or triangle with its rotation and form: the one description of
 * the polygon that our rasteriser and the SVG share.
 */
export function shapeVertices(s: PlacedShape, side: number, ox = 0, oy = 0): Array<[number, number]> {
  const cx = s.cx * side + ox, cy = s.cy * side + oy, r = s.radius * side;
  let pts: Array<[number, number]>;
  if (s.shape === 'square') {
    const h = r * SQUARE_HALF;
    pts = [[-h, -h], [h, -h], [h, h], [-h, h]];
  } else if (s.shape === 'triangle') {
    const R = r * TRIANGLE_CIRCUM;
    pts = s.form === 'isosceles'
      ? [[0, -R], [R * 0.55, R * 0.75], [-R * 0.55, R * 0.75]]
      : [[0, -R], [R * Math.cos(Math.PI / 6), R / 2], [-R * Math.cos(Math.PI / 6), R / 2]];
  } else throw new DatasetError('a circle has no vertices');
  const c = Math.cos(s.rotation ?? 0), sn = Math.sin(s.rotation ?? 0);
  return pts.map(([x, y]) => [cx + x * c - y * sn, cy + x * sn + y * c]);
}

/** Convex polygon (clockwise on screen): the largest signed distance to its edge lines (exact inside; a bound outside). */
function polygonDistance(pts: ReadonlyArray<readonly [number, number]>): SignedDistance {
  const edges = pts.map(([x0, y0], i) => {
    const [x1, y1] = pts[(i + 1) % pts.length];
    const len = Math.hypot(x1 - x0, y1 - y0);
    const nx = (y1 - y0) / len, ny = -(x1 - x0) / len; // outward for clockwise-on-screen order (y down)
    return [nx, ny, nx * x0 + ny * y0] as const;
  });
  return (x, y) => {
    let d = -Infinity;
    for (const [nx, ny, off] of edges) d = Math.max(d, x * nx + y * ny - off);
    return d;
  };
}

function shapeDistance(s: PlacedShape, side: number, ox = 0, oy = 0): { sd: SignedDistance; extent: number } {
  const filled = filledDistance(s, side, ox, oy);
  if (s.outline === undefined) return filled;
  // An outline: the band of width w about the boundary (mitred corners, as |max of edge lines| gives them).
  const w = (s.outline * side) / 2;
  return { sd: (x, y) => Math.abs(filled.sd(x, y)) - w, extent: filled.extent + w };
}

function filledDistance(s: PlacedShape, side: number, ox: number, oy: number): { sd: SignedDistance; extent: number } {
  const cx = s.cx * side + ox, cy = s.cy * side + oy, r = s.radius * side;
  if (s.shape !== 'circle' && (s.rotation !== undefined || s.form !== undefined)) {
    return { sd: polygonDistance(shapeVertices(s, side, ox, oy)), extent: r * EXTENT[s.shape] };
  }
  if (s.shape === 'circle') return { sd: (x, y) => Math.hypot(x - cx, y - cy) - r, extent: r };
  if (s.shape === 'square') {
    const h = r * SQUARE_HALF;
    return {
      sd: (x, y) => {
        const dx = Math.abs(x - cx) - h, dy = Math.abs(y - cy) - h;
        return dx > 0 && dy > 0 ? Math.hypot(dx, dy) : Math.max(dx, dy);
      },
      extent: h,
    };
  }
  // Equilateral triangle pointing up, centroid at (cx, cy): inradius R/2, outward edge normals at 90°, 210°, 330°.
  const R = r * TRIANGLE_CIRCUM;
  const normals = [[0, 1], [-Math.cos(Math.PI / 6), -0.5], [Math.cos(Math.PI / 6), -0.5]];
  return {
    sd: (x, y) => {
      let d = -Infinity;
      for (const [nx, ny] of normals) d = Math.max(d, (x - cx) * nx + (y - cy) * ny - R / 2);
      return d;
    },
    extent: R,
  };
}

const HALF_DIAGONAL = Math.SQRT1_2;

/** Width and height a scene renders at for `side` (its shorter side). */
export function sceneDimensions(scene: ShapeScene, side: number): { width: number; height: number } {
  const a = scene.aspect ?? 1;
  return a >= 1 ? { width: Math.round(side * a), height: side } : { width: side, height: Math.round(side / a) };
}

/**
 * Render a scene with `side` as its shorter side (`side`×`side` unless the scene has an aspect): edge pixels get
 * supersampled coverage (4×4 unless the scene says otherwise; 1 = no anti-aliasing), then noise is added.
 */
export function renderScene(scene: ShapeScene, side: number, supersample = scene.supersample ?? 4): RgbImage {
  const { width, height } = sceneDimensions(scene, side);
  const ox = (width - side) / 2, oy = (height - side) / 2;
  const data = new Uint8Array(width * height * 3);
  const acc = new Float32Array(width * height * 3);
  const to = scene.backgroundTo;
  for (let p = 0; p < width * height; p++) {
    const t = to ? ((p % width) / Math.max(1, width - 1) + Math.floor(p / width) / Math.max(1, height - 1)) / 2 : 0;
    acc[p * 3] = scene.background[0] + (to ? (to[0] - scene.background[0]) * t : 0);
    acc[p * 3 + 1] = scene.background[1] + (to ? (to[1] - scene.background[1]) * t : 0);
    acc[p * 3 + 2] = scene.background[2] + (to ? (to[2] - scene.background[2]) * t : 0);
  }
  const ss = supersample;
  const inv = 1 / (ss * ss);
  for (const s of scene.shapes) {
    const { sd, extent } = shapeDistance(s, side, ox, oy);
    const [cr, cg, cb] = s.rgb ?? SHAPE_PALETTE[s.color];
    const x0 = Math.max(0, Math.floor(s.cx * side + ox - extent - 1));
    const x1 = Math.min(width - 1, Math.ceil(s.cx * side + ox + extent + 1));
    const y0 = Math.max(0, Math.floor(s.cy * side + oy - extent - 1));
    const y1 = Math.min(height - 1, Math.ceil(s.cy * side + oy + extent + 1));
    for (let py = y0; py <= y1; py++) {
      for (let px = x0; px <= x1; px++) {
        const d = sd(px + 0.5, py + 0.5);
        let a: number;
        if (ss === 1) {
          // No anti-aliasing: a pixel is the shape's when its centre is inside.
          if (d > 0) continue;
          a = 1;
        } else if (d <= -HALF_DIAGONAL) a = 1;
        else if (d >= HALF_DIAGONAL) continue;
        else {
          let hits = 0;
          for (let sy = 0; sy < ss; sy++) {
            const y = py + (sy + 0.5) / ss;
            for (let sx = 0; sx < ss; sx++) if (sd(px + (sx + 0.5) / ss, y) <= 0) hits++;
          }
          if (hits === 0) continue;
          a = hits * inv;
        }
        const i = (py * width + px) * 3;
        acc[i] += (cr - acc[i]) * a;
        acc[i + 1] += (cg - acc[i + 1]) * a;
        acc[i + 2] += (cb - acc[i + 2]) * a;
      }
    }
  }
  // Noise: the sum of the four bytes of one random word is close to Gaussian (Irwin–Hall) and far cheaper than
  // Box–Muller; mean 510, std √(4 · (256² − 1) / 12).
  const noise = scene.noiseStd > 0 ? new Rng(scene.noiseSeed) : undefined;
  const noiseScale = scene.noiseStd / Math.sqrt((4 * (256 * 256 - 1)) / 12);
  for (let i = 0; i < acc.length; i++) {
    let v = acc[i];
    if (noise) {
      const w = noise.nextU32();
      v += ((w & 255) + ((w >>> 8) & 255) + ((w >>> 16) & 255) + (w >>> 24) - 510) * noiseScale;
    }
    data[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
  }
  return { width, height, data };
}

/** The same scene as SVG (no noise): rasterised by librsvg, it is an image "drawn by other software". */
export function sceneToSvg(scene: ShapeScene, side: number): string {
  const rgb = (c: readonly number[]): string => `rgb(${c[0]},${c[1]},${c[2]})`;
  const { width, height } = sceneDimensions(scene, side);
  const ox = (width - side) / 2, oy = (height - side) / 2;
  const parts = scene.shapes.map((s) => {
    const cx = s.cx * side + ox, cy = s.cy * side + oy, r = s.radius * side;
    const colour = rgb(s.rgb ?? SHAPE_PALETTE[s.color]);
    const fill = s.outline === undefined ? colour : `none" stroke="${colour}" stroke-width="${s.outline * side}`;
    if (s.shape === 'circle') return `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`;
    if (s.rotation !== undefined || s.form !== undefined) {
      return `<polygon points="${shapeVertices(s, side, ox, oy).map(([x, y]) => `${x},${y}`).join(' ')}" fill="${fill}"/>`;
    }
    if (s.shape === 'square') {
      const h = r * SQUARE_HALF;
      return `<rect x="${cx - h}" y="${cy - h}" width="${2 * h}" height="${2 * h}" fill="${fill}"/>`;
    }
    const R = r * TRIANGLE_CIRCUM, dx = R * Math.cos(Math.PI / 6);
    return `<polygon points="${cx},${cy - R} ${cx + dx},${cy + R / 2} ${cx - dx},${cy + R / 2}" fill="${fill}"/>`;
  });
  const to = scene.backgroundTo;
  const defs = to
    ? `<defs><linearGradient id="bg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${rgb(scene.background)}"/>`
      + `<stop offset="1" stop-color="${rgb(to)}"/></linearGradient></defs>`
    : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${defs}`
    + `<rect width="${width}" height="${height}" fill="${to ? 'url(#bg)' : rgb(scene.background)}"/>${parts.join('')}</svg>`;
}

// ---- the dataset ------------------------------------------------------------------------------------------------

/** Upper bound on redraws while looking for a scene of the requested split; hit only by a vocabulary too small. */
const MAX_SPLIT_TRIES = 10_000;

export class ShapesDataset {
  readonly options: ShapesOptions;
  private readonly root: Rng;

  constructor(options: ShapesOptionsInput = {}) {
    const parsed = ShapesOptionsSchema.safeParse(options);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new DatasetError(`shapes dataset option '${issue?.path.join('.') ?? ''}': ${issue?.message ?? 'invalid'}`);
    }
    this.options = parsed.data;
    this.root = new Rng(this.options.seed).fork('shapes');
  }

  get length(): number {
    return this.options.numSamples;
  }

  /** Whether training sample `index` is drawn in the varied style (`variety`); eval samples never are. */
  varied(index: number): boolean {
    const o = this.options;
    return o.split === 'train' && o.variety > 0 && this.root.fork(`variety-pick:${index}`).uniform() < o.variety;
  }

  /** The scene of sample `index` (cheap: no pixels). */
  scene(index: number): { description: ShapeSpec[]; scene: ShapeScene; rng: Rng } {
    const o = this.options;
    if (!Number.isInteger(index) || index < 0 || index >= o.numSamples) {
      throw new DatasetError(`shapes dataset: index ${index} is outside 0..${o.numSamples - 1}`);
    }
    const rng = this.root.fork(`${o.split}:${index}`);
    for (let tries = 0; tries < MAX_SPLIT_TRIES; tries++) {
      const description = drawDescription(rng, o);
      if (splitOfScene(description, o.evalFraction) !== o.split) continue;
      const shapes = placeShapes(rng, description, this.options.zoom);
      const plain: ShapeScene = { shapes, background: drawBackground(rng), noiseStd: o.noiseStd, noiseSeed: rng.nextU32() };
      const scene = this.varied(index) ? varyScene(this.root.fork(`variety:${o.split}:${index}`), plain) : plain;
      return { description, scene, rng };
    }
    throw new DatasetError(`shapes dataset: no '${o.split}' scene found in ${MAX_SPLIT_TRIES} draws; widen the shapes/colors or change evalFraction`);
  }

  get(index: number): ShapeSample {
    const { description, scene, rng } = this.scene(index);
    // A forked stream, so the option changes nothing else about the sample.
    const caption = this.options.captionStyle === 'varied' ? variedCaptionFor(description, rng.fork('caption')) : captionFor(description);
    const qa = questionsFor(description);
    const conversations: Turn[] = [
      { from: 'human', value: `${IMAGE_PLACEHOLDER}\n${rng.pick(DESCRIBE_PROMPTS)}` },
      { from: 'gpt', value: caption },
    ];
    const extra = rng.shuffle(qa.slice()).slice(0, this.options.qaTurns);
    for (const pair of extra) {
      conversations.push({ from: 'human', value: capitalise(pair.question) }, { from: 'gpt', value: pair.answer });
    }
    const degradation = this.varied(index)
      ? drawVariedDegradation(this.root.fork(`variety-degrade:${index}`))
      : this.options.augment > 0 ? drawDegradation(this.root.fork(`augment:${this.options.split}:${index}`), this.options.augment) : undefined;
    return {
      id: `shapes-${this.options.split}-${String(this.options.seed)}-${index}`,
      image: renderScene(scene, degradation?.side ?? this.options.size),
      ...(degradation?.effects ? { imageDegradation: degradation.effects } : {}),
      caption,
      qa,
      conversations,
      description,
      scene,
      split: this.options.split,
    };
  }

  *[Symbol.iterator](): IterableIterator<ShapeSample> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}

/**
 * With probability `p`, one or more of: another drawing side, blur, JPEG (each with probability 1/2; the side when
 * none was drawn). A separate stream per sample, so turning augmentation on changes nothing else about it.
 */
function drawDegradation(rng: Rng, p: number): { side?: number; effects?: ImageDegradation } | undefined {
  if (rng.uniform() >= p) return undefined;
  const blur = rng.uniform() < 0.5;
  const jpeg = rng.uniform() < 0.5;
  const resize = rng.uniform() < 0.5 || (!blur && !jpeg);
  const side = resize ? Math.round(rng.range(40, 128)) : undefined;
  const effects: ImageDegradation = {
    ...(blur ? { blurSigma: rng.range(0.3, 1) } : {}),
    ...(jpeg ? { jpegQuality: 50 + rng.int(46) } : {}),
  };
  return { side, effects: blur || jpeg ? effects : undefined };
}

/** A varied sample's picture: drawn at 32–256 px (log-uniform), blurred (σ 0.3–1.5) 30%, JPEG (quality 35–90) 35%. */
function drawVariedDegradation(rng: Rng): { side: number; effects?: ImageDegradation } {
  const side = Math.round(Math.exp(rng.range(Math.log(32), Math.log(256))));
  const blur = rng.uniform() < 0.3;
  const jpeg = rng.uniform() < 0.35;
  const effects: ImageDegradation = {
    ...(blur ? { blurSigma: rng.range(0.3, 1.5) } : {}),
    ...(jpeg ? { jpegQuality: 35 + rng.int(56) } : {}),
  };
  return { side, effects: blur || jpeg ? effects : undefined };
}

function capitalise(s: string): string {
  return s.length ? s[0].toUpperCase() + s.slice(1) : s;
}

export function createShapesDataset(options: ShapesOptionsInput = {}): ShapesDataset {
  return new ShapesDataset(options);
}

/** PNG bytes of a sample's image. */
export function shapeSamplePng(sample: ShapeSample): Promise<Buffer> {
  return encodePng(sample.image);
}

// ---- robustness variants ------------------------------------------------------------------------------------------

export interface ImageVariant {
  name: string;
  format: 'png' | 'jpeg';
  width: number;
  height: number;
  bytes: Buffer;
}

export const VariantOptionsSchema = z.object({
  /** Sides for re-rendering with our rasteriser and with librsvg. */
  sizes: z.array(z.number().int().min(8).max(4096)).default([32, 96, 224]),
  blurSigma: z.number().min(0.3).max(100).default(1),
  jpegQuality: z.number().int().min(1).max(100).default(50),
}).strict();
export type VariantOptions = z.input<typeof VariantOptionsSchema>;

/**
 * The sample's scene as images a model did not see in training: re-rendered at other sizes, drawn by librsvg
 * (different anti-aliasing, no noise), blurred, JPEG re-encoded, and resized by sharp from the original.
 */
export async function shapeVariants(sample: ShapeSample, options: VariantOptions = {}): Promise<ImageVariant[]> {
  const o = VariantOptionsSchema.parse(options);
  const side = sample.image.width;
  const png = await encodePng(sample.image);
  const out: ImageVariant[] = [];
  const pngVariant = async (name: string, s: Sharp): Promise<void> => {
    const { data, info } = await s.png().toBuffer({ resolveWithObject: true });
    out.push({ name, format: 'png', width: info.width, height: info.height, bytes: data });
  };
  for (const size of o.sizes) {
    out.push({ name: `render-${size}`, format: 'png', width: size, height: size, bytes: await encodePng(renderScene(sample.scene, size)) });
    await pngVariant(`svg-${size}`, sharp(Buffer.from(sceneToSvg(sample.scene, size))));
  }
  await pngVariant(`blur-${o.blurSigma}`, sharp(png).blur(o.blurSigma));
  const jpeg = await sharp(png).jpeg({ quality: o.jpegQuality }).toBuffer();
  out.push({ name: `jpeg-q${o.jpegQuality}`, format: 'jpeg', width: side, height: side, bytes: jpeg });
  const up = Math.round(side * 1.5);
  await pngVariant(`resized-${up}`, sharp(png).resize(up, up, { kernel: 'lanczos3' }));
  return out;
}
