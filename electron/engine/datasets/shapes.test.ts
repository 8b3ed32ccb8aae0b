import { describe, expect, it } from 'vitest';
import { decodeImage, type RgbImage } from '../image.js';
import {
  SHAPE_COLORS, SHAPE_PALETTE, SHAPE_POSITIONS, SHAPE_SIZES, ShapesDataset, captionFor, renderScene, sceneKey,
  sceneToSvg, shapeSamplePng, shapeVariants, splitOfScene, type PlacedShape, type ShapeColor, type ShapeScene, type ShapeSpec,
  type ShapesOptionsInput,
} from './shapes.js';
import sharp from 'sharp';
import { DatasetError } from './types.js';
import { loadSampleImage } from './loaders.js';

const px = (img: RgbImage, x: number, y: number): number[] => {
  const i = (Math.min(img.height - 1, Math.max(0, y)) * img.width + Math.min(img.width - 1, Math.max(0, x))) * 3;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
};
const dist = (a: readonly number[], b: readonly number[]): number => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
const nearestColor = (c: readonly number[]): ShapeColor =>
  SHAPE_COLORS.reduce<ShapeColor>((best, name) => (dist(c, SHAPE_PALETTE[name]) < dist(c, SHAPE_PALETTE[best]) ? name : best), SHAPE_COLORS[0]);

/** Answers a generated question from the structured description alone (independent of the generator's code). */
function answer(q: string, shapes: readonly ShapeSpec[]): string {
  const words: Record<string, string> = { 'on the left': 'left', 'on the right': 'right', 'at the top': 'top', 'at the bottom': 'bottom', 'in the center': 'center' };
  const wherePart = Object.keys(words).find((w) => q.endsWith(`${w}?`));
  const at = wherePart ? words[wherePart] : undefined;
  let m: RegExpExecArray | null;
  if (q === 'how many shapes are there?') return ['zero', 'one', 'two', 'three'][shapes.length];
  if ((m = /^is there a (\w+)\?$/.exec(q))) return shapes.some((s) => s.shape === m![1]) ? 'yes' : 'no';
  if (/^what shape is /.test(q)) return one(shapes.filter((s) => s.position === at)).shape;
  if ((m = /^what color is the (\w+)/.exec(q))) return one(shapes.filter((s) => s.shape === m![1] && (!at || s.position === at))).color;
  if ((m = /^what size is the (\w+) (\w+)/.exec(q))) return one(shapes.filter((s) => s.color === m![1] && s.shape === m![2] && (!at || s.position === at))).size;
  if ((m = /^where is the (\w+) (\w+)\?$/.exec(q))) return one(shapes.filter((s) => s.color === m![1] && s.shape === m![2])).position;
  throw new Error(`unknown question '${q}'`);
}
function one<T>(xs: T[]): T {
  if (xs.length !== 1) throw new Error(`question is ambiguous or empty (${xs.length} matches)`);
  return xs[0];
}

describe('shapes dataset', () => {
  it('is deterministic by seed', () => {
    const a = new ShapesDataset({ seed: 5 }).get(17);
    const b = new ShapesDataset({ seed: 5 }).get(17);
    const c = new ShapesDataset({ seed: 6 }).get(17);
    expect(Buffer.from(a.image.data).equals(Buffer.from(b.image.data))).toBe(true);
    expect(a.caption).toBe(b.caption);
    expect(a.qa).toEqual(b.qa);
    expect(a.conversations).toEqual(b.conversations);
    expect(Buffer.from(a.image.data).equals(Buffer.from(c.image.data))).toBe(false);
    const captions = new Set(Array.from({ length: 30 }, (_, i) => new ShapesDataset({ seed: 5 }).get(i).caption));
    expect(captions.size).toBeGreaterThan(20);
  });

  it('writes captions, VQA answers and conversations that agree with the description', () => {
    const ds = new ShapesDataset({ seed: 1, numSamples: 200, qaTurns: 2 });
    let multi = 0;
    for (const s of ds) {
      if (s.description.length > 1) multi++;
      // Caption: each shape appears as "a <size> <color> <shape> <where>", in order, joined naturally.
      const phrases = s.description.map((d) => `a ${d.size} ${d.color} ${d.shape} ${{ left: 'on the left', right: 'on the right', top: 'at the top', bottom: 'at the bottom', center: 'in the center' }[d.position]}`);
      const expected = phrases.length === 1 ? phrases[0] : phrases.length === 2 ? `${phrases[0]} and ${phrases[1]}` : `${phrases[0]}, ${phrases[1]} and ${phrases[2]}`;
      expect(s.caption).toBe(expected);
      expect(s.qa.length).toBeGreaterThanOrEqual(1 + 3 * s.description.length);
      for (const { question, answer: a } of s.qa) expect(a, question).toBe(answer(question, s.description));
      expect(s.conversations[0].from).toBe('human');
      expect(s.conversations[0].value.startsWith('<image>\n')).toBe(true);
      expect(s.conversations[1]).toEqual({ from: 'gpt', value: s.caption });
      expect(s.conversations.length).toBe(6);
      for (let t = 2; t < 6; t += 2) {
        const q = s.conversations[t].value;
        expect(s.conversations[t + 1].value).toBe(answer(q[0].toLowerCase() + q.slice(1), s.description));
      }
      expect(new Set(s.description.map((d) => d.position)).size).toBe(s.description.length);
    }
    expect(multi).toBeGreaterThan(50);
    expect(captionFor([{ shape: 'circle', color: 'red', size: 'small', position: 'left' }])).toBe('a small red circle on the left');
  });

  it("varies captions with captionStyle 'varied' (always colour and shape) and changes nothing else", () => {
    const full = new ShapesDataset({ seed: 5, numSamples: 60 });
    const varied = new ShapesDataset({ seed: 5, numSamples: 60, captionStyle: 'varied' });
    const shorter = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const a = full.get(i);
      const b = varied.get(i);
      expect(b.description).toEqual(a.description);
      expect(b.image.data).toEqual(a.image.data);
      expect(b.qa).toEqual(a.qa);
      expect(a.caption).toBe(captionFor(a.description));
      for (const s of b.description) expect(b.caption).toContain(`${s.color} ${s.shape}`);
      if (b.caption !== a.caption) shorter.add(b.caption);
    }
    // About three in four phrases are shorter than the full one.
    expect(shorter.size).toBeGreaterThan(30);
    expect(new ShapesDataset({ seed: 5, numSamples: 60, captionStyle: 'varied' }).get(7).caption).toBe(varied.get(7).caption);
  });

  it('draws each shape in its palette colour at its centre and in the right part of the image', () => {
    for (const size of [64, 32, 128]) {
      const ds = new ShapesDataset({ seed: 3, size, numSamples: 60 });
      for (const s of ds) {
        for (const shape of s.scene.shapes) {
          const cx = Math.floor(shape.cx * size), cy = Math.floor(shape.cy * size);
          const c = px(s.image, cx, cy);
          expect(nearestColor(c)).toBe(shape.color);
          expect(dist(c, SHAPE_PALETTE[shape.color])).toBeLessThan(25);
          const third = (v: number): number => (v < size / 3 ? 0 : v < (2 * size) / 3 ? 1 : 2);
          const expectThirds = { left: [0, 1], right: [2, 1], top: [1, 0], bottom: [1, 2], center: [1, 1] }[shape.position];
          expect([third(cx), third(cy)]).toEqual(expectThirds);
        }
        // Corners are background: light.
        for (const [x, y] of [[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]]) {
          expect(Math.min(...px(s.image, x, y))).toBeGreaterThan(200);
        }
      }
    }
  });

  it('renders anti-aliased shapes whose covered area matches the geometry', () => {
    const ds = new ShapesDataset({ seed: 8, numSamples: 40, minShapes: 1, maxShapes: 1, noiseStd: 0, size: 64 });
    let smooth = 0;
    const areas: Record<string, number[]> = { small: [], large: [] };
    for (const s of ds) {
      const [shape] = s.scene.shapes;
      const bg = s.scene.background, fg = SHAPE_PALETTE[shape.color];
      let covered = 0;
      for (let p = 0; p < 64 * 64; p++) {
        const c = [s.image.data[3 * p], s.image.data[3 * p + 1], s.image.data[3 * p + 2]];
        const a = Math.max(0, Math.min(1, ((c[0] - bg[0]) * (fg[0] - bg[0]) + (c[1] - bg[1]) * (fg[1] - bg[1]) + (c[2] - bg[2]) * (fg[2] - bg[2])) / dist(fg, bg) ** 2));
        covered += a;
        if (a > 0.1 && a < 0.9) smooth++;
      }
      const r = shape.radius * 64;
      const area = shape.shape === 'circle' ? Math.PI * r * r
        : shape.shape === 'square' ? (2 * 0.88 * r) ** 2
          : ((3 * Math.sqrt(3)) / 4) * (1.15 * r) ** 2;
      expect(covered / area).toBeGreaterThan(0.95);
      expect(covered / area).toBeLessThan(1.05);
      areas[shape.size].push(r);
    }
    expect(smooth).toBeGreaterThan(100); // edges are blended, not aliased
    expect(Math.max(...areas.small)).toBeLessThan(Math.min(...areas.large));
  });

  it('splits train and eval disjointly by scene, whatever the seeds', () => {
    // Scenes (descriptions) are all the split needs; scene() skips rendering.
    const scenes = (ds: ShapesDataset): ShapeSpec[][] => Array.from({ length: ds.length }, (_, i) => ds.scene(i).description);
    const trainKeys = new Set<string>();
    for (const d of scenes(new ShapesDataset({ seed: 1, split: 'train', numSamples: 2000 }))) {
      expect(splitOfScene(d, 0.1)).toBe('train');
      trainKeys.add(sceneKey(d));
    }
    let evalCount = 0;
    for (const seed of [1, 2]) {
      for (const d of scenes(new ShapesDataset({ seed, split: 'eval', numSamples: 300, minShapes: 1, maxShapes: 2 }))) {
        expect(splitOfScene(d, 0.1)).toBe('eval');
        expect(trainKeys.has(sceneKey(d))).toBe(false);
        evalCount++;
      }
    }
    expect(evalCount).toBe(600);
    // Single shapes have a small scene space (180 scenes): the split still holds.
    const singleTrain = new Set(scenes(new ShapesDataset({ split: 'train', minShapes: 1, maxShapes: 1, numSamples: 1000 })).map(captionFor));
    expect(singleTrain.size).toBeGreaterThan(120);
    for (const d of scenes(new ShapesDataset({ split: 'eval', minShapes: 1, maxShapes: 1, numSamples: 200 }))) {
      expect(singleTrain.has(captionFor(d))).toBe(false);
    }
    const evalSample = new ShapesDataset({ split: 'eval' }).get(0);
    expect(evalSample.split).toBe('eval');
    expect(evalSample.id).not.toBe(new ShapesDataset({ split: 'train' }).get(0).id);
  });

  it('honours vocabulary and count options and reports impossible ones', () => {
    const ds = new ShapesDataset({ shapes: ['circle'], colors: ['red', 'blue'], minShapes: 2, maxShapes: 2, numSamples: 30 });
    for (const s of ds) {
      expect(s.description.length).toBe(2);
      for (const d of s.description) {
        expect(d.shape).toBe('circle');
        expect(['red', 'blue']).toContain(d.color);
      }
    }
    // One colour, one shape, one shape per image: 2 sizes × 5 positions = 10 scenes; eval exists only if one hashes there.
    const tiny = { shapes: ['square' as const], colors: ['green' as const], minShapes: 1, maxShapes: 1, split: 'eval' as const };
    const anyEval = SHAPE_SIZES.some((size) => SHAPE_POSITIONS.some((position) =>
      splitOfScene([{ shape: 'square', color: 'green', size, position }], 0.1) === 'eval'));
    if (anyEval) expect(new ShapesDataset(tiny).get(0).split).toBe('eval');
    else expect(() => new ShapesDataset(tiny).get(0)).toThrow(/no 'eval' scene/);
    const large = new ShapesDataset({ sizes: ['large'], positions: ['center', 'left'], minShapes: 1, maxShapes: 2, numSamples: 40 });
    for (const s of large) for (const d of s.description) expect([d.size, ['center', 'left'].includes(d.position)]).toEqual(['large', true]);
    expect(() => new ShapesDataset({ positions: ['center'], minShapes: 1, maxShapes: 2 })).toThrow(/maxShapes must not exceed the number of positions/);
    expect(() => new ShapesDataset({ minShapes: 3, maxShapes: 2 })).toThrow(/minShapes/);
    expect(() => new ShapesDataset({ size: 2 })).toThrow(DatasetError);
    expect(() => new ShapesDataset({ numSamples: 5 }).get(5)).toThrow(/outside 0\.\.4/);
    expect(() => new ShapesDataset({ colour: 'red' } as never)).toThrow(/colour|unrecognized/i);
  });

  it('zoom draws the same scenes larger about the centre, covering zoom² the pixels', () => {
    const opts: ShapesOptionsInput = { seed: 5, numSamples: 12, minShapes: 1, maxShapes: 1, positions: ['center'], noiseStd: 0, size: 32 };
    const plain = new ShapesDataset(opts);
    const zoomed = new ShapesDataset({ ...opts, zoom: 2 });
    const shapePixels = (img: { data: Uint8Array }) => {
      let n = 0;
      for (let p = 0; p < img.data.length / 3; p++) if (Math.min(img.data[3 * p], img.data[3 * p + 1], img.data[3 * p + 2]) < 170) n++;
      return n;
    };
    for (let i = 0; i < 12; i++) {
      const a = plain.get(i), b = zoomed.get(i);
      expect(b.description).toEqual(a.description);
      expect(b.caption).toBe(a.caption);
      expect(b.scene.shapes[0].radius).toBeCloseTo(2 * a.scene.shapes[0].radius, 10);
      expect(shapePixels(b.image) / shapePixels(a.image)).toBeGreaterThan(3);
      expect(nearestColor(px(b.image, 16, 16))).toBe(b.scene.shapes[0].color);
    }
    expect(() => new ShapesDataset({ zoom: 0.5 })).toThrow(/zoom/);
  });

  it('renders 64×64 images in well under 5 ms', () => {
    const ds = new ShapesDataset({ seed: 4, numSamples: 200 });
    ds.get(0);
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) ds.get(i);
    const perImage = (performance.now() - t0) / 200;
    expect(perImage).toBeLessThan(5);
  });

  it('produces PNGs and robustness variants that decode to the same scene', async () => {
    const sample = new ShapesDataset({ seed: 2, minShapes: 2, maxShapes: 2 }).get(0);
    const png = await decodeImage(await shapeSamplePng(sample));
    expect(Array.from(png.data)).toEqual(Array.from(sample.image.data));
    const variants = await shapeVariants(sample, { sizes: [48, 128] });
    expect(variants.map((v) => v.name)).toEqual(['render-48', 'svg-48', 'render-128', 'svg-128', 'blur-1', 'jpeg-q50', 'resized-96']);
    for (const v of variants) {
      const img = await decodeImage(v.bytes, v.name);
      expect([img.width, img.height]).toEqual([v.width, v.height]);
      for (const shape of sample.scene.shapes) {
        const c = px(img, Math.floor(shape.cx * img.width), Math.floor(shape.cy * img.height));
        expect(nearestColor(c), `${v.name}: ${shape.color} ${shape.shape}`).toBe(shape.color);
      }
    }
    // librsvg's rendering differs from ours at the edges but agrees in the interior.
    const ours = renderScene({ ...sample.scene, noiseStd: 0 }, 128);
    const svg = await decodeImage(variants[3].bytes);
    let diff = 0;
    for (let i = 0; i < ours.data.length; i++) diff += Math.abs(ours.data[i] - svg.data[i]);
    expect(diff / ours.data.length).toBeLessThan(3);
  });

  it('augment degrades a share of the pictures (other side, blur, JPEG), the same way every time, and nothing else', async () => {
    const opts = { seed: 5, numSamples: 60, minShapes: 1, maxShapes: 1 } as const;
    const plain = new ShapesDataset(opts);
    const degraded = new ShapesDataset({ ...opts, augment: 0.5 });
    const again = new ShapesDataset({ ...opts, augment: 0.5 });
    let resized = 0, blurred = 0, jpeg = 0, untouched = 0;
    for (let i = 0; i < 60; i++) {
      const a = plain.get(i), b = degraded.get(i), c = again.get(i);
      expect([b.caption, b.scene, b.conversations]).toEqual([a.caption, a.scene, a.conversations]);
      expect([c.image.width, c.imageDegradation]).toEqual([b.image.width, b.imageDegradation]);
      const side = b.image.width;
      if (side !== 64) expect(side).toBeGreaterThanOrEqual(40), expect(side).toBeLessThanOrEqual(128), resized++;
      if (b.imageDegradation?.blurSigma !== undefined) blurred++;
      if (b.imageDegradation?.jpegQuality !== undefined) jpeg++;
      if (side === 64 && !b.imageDegradation) untouched++, expect(Array.from(b.image.data)).toEqual(Array.from(a.image.data));
    }
    expect(untouched).toBeGreaterThan(15);
    expect(untouched).toBeLessThan(45);
    expect(Math.min(resized, blurred, jpeg)).toBeGreaterThan(3);
    // The degradation happens when the picture is loaded for training; the shape keeps its colour through it.
    const index = [...Array(60).keys()].find((i) => degraded.get(i).imageDegradation?.blurSigma !== undefined)!;
    const sample = degraded.get(index);
    const loaded = await loadSampleImage(sample);
    expect(Array.from(loaded.data)).not.toEqual(Array.from(sample.image.data));
    const shape = sample.scene.shapes[0];
    expect(nearestColor(px(loaded, Math.floor(shape.cx * loaded.width), Math.floor(shape.cy * loaded.height)))).toBe(shape.color);
  });
  it('variety draws a share of training pictures as other programs would, the same way every time, and nothing else', async () => {
    const opts = { seed: 5, numSamples: 160, minShapes: 1, maxShapes: 1, augment: 0.3 } as const;
    const plain = new ShapesDataset(opts);
    const varied = new ShapesDataset({ ...opts, variety: 0.5 });
    const again = new ShapesDataset({ ...opts, variety: 0.5 });
    const seen = { n: 0, rotatedTriangles: 0, tiltedSquares: 0, isosceles: 0, outlines: 0, aliased: 0, coarse: 0, gradient: 0, grey: 0, tinted: 0, clean: 0, aspect: 0, small: 0, big: 0, blurred: 0, jpeg: 0, grown: 0 };
    for (let i = 0; i < opts.numSamples; i++) {
      const a = plain.get(i), b = varied.get(i), c = again.get(i);
      expect([b.caption, b.description, b.conversations, b.qa], `sample ${i}`).toEqual([a.caption, a.description, a.conversations, a.qa]);
      expect([c.scene, c.imageDegradation, Array.from(c.image.data)]).toEqual([b.scene, b.imageDegradation, Array.from(b.image.data)]);
      if (!varied.varied(i)) {
        expect([b.scene, b.imageDegradation, Array.from(b.image.data)], `sample ${i}`).toEqual([a.scene, a.imageDegradation, Array.from(a.image.data)]);
        continue;
      }
      seen.n++;
      const s = b.scene.shapes[0], p = a.scene.shapes[0];
      // The caption stays true: size class, side of the centre, inside the picture, colour nearest its palette entry.
      if (s.size === 'small') expect(s.radius).toBeLessThan(0.114);
      else expect(s.radius).toBeGreaterThanOrEqual(p.radius);
      const reach = s.radius * (s.shape === 'triangle' ? 1.15 : s.shape === 'square' ? 0.88 * Math.SQRT2 : 1);
      expect(Math.min(s.cx, s.cy, 1 - s.cx, 1 - s.cy)).toBeGreaterThanOrEqual(reach);
      expect(Math.sign(Math.round((s.cx - 0.5) * 100)), `${s.position} x`).toBe(Math.sign(Math.round((p.cx - 0.5) * 100)));
      expect(Math.sign(Math.round((s.cy - 0.5) * 100)), `${s.position} y`).toBe(Math.sign(Math.round((p.cy - 0.5) * 100)));
      expect(nearestColor(s.rgb!)).toBe(s.color);
      if (s.radius > 0.2) seen.grown++;
      if (s.shape === 'triangle' && s.rotation !== undefined && Math.abs(Math.sin((3 * s.rotation) / 2)) > 0.2) seen.rotatedTriangles++;
      if (s.shape === 'square' && s.rotation !== undefined && Math.abs(s.rotation) > 0.1) seen.tiltedSquares++;
      if (s.form === 'isosceles') seen.isosceles++;
      if (s.outline !== undefined) seen.outlines++;
      if (b.scene.supersample === 1) seen.aliased++;
      if (b.scene.supersample === 2) seen.coarse++;
      if (b.scene.backgroundTo) seen.gradient++;
      const [r, g, bl] = b.scene.background;
      if (r === g && g === bl && r < 232) seen.grey++;
      if (Math.max(r, g, bl) - Math.min(r, g, bl) > 12) seen.tinted++;
      if (b.scene.noiseStd === 0) seen.clean++;
      if (b.image.width !== b.image.height) seen.aspect++;
      const side = Math.min(b.image.width, b.image.height);
      expect(side).toBeGreaterThanOrEqual(32);
      expect(side).toBeLessThanOrEqual(256);
      if (side < 48) seen.small++;
      if (side > 160) seen.big++;
      if (b.imageDegradation?.blurSigma !== undefined) seen.blurred++;
      if (b.imageDegradation?.jpegQuality !== undefined) seen.jpeg++;
    }
    expect(seen.n).toBeGreaterThan(55);
    expect(seen.n).toBeLessThan(105);
    for (const [what, count] of Object.entries(seen)) expect(count, what).toBeGreaterThanOrEqual(3);
    // A varied picture survives loading: its shape keeps its colour through the degradation.
    const i = [...Array(opts.numSamples).keys()].find((k) => varied.varied(k) && varied.get(k).imageDegradation?.jpegQuality !== undefined && varied.get(k).scene.shapes[0].outline === undefined)!;
    const sample = varied.get(i);
    const loaded = await loadSampleImage(sample);
    const shape = sample.scene.shapes[0];
    const ox = (loaded.width - Math.min(loaded.width, loaded.height)) / 2, oy = (loaded.height - Math.min(loaded.width, loaded.height)) / 2;
    const side = Math.min(loaded.width, loaded.height);
    expect(nearestColor(px(loaded, Math.floor(shape.cx * side + ox), Math.floor(shape.cy * side + oy)))).toBe(shape.color);
  });

  it('variety leaves the eval split as drawn', () => {
    const opts = { seed: 5, numSamples: 20, split: 'eval' } as const;
    const a = new ShapesDataset(opts), b = new ShapesDataset({ ...opts, variety: 1 });
    for (let i = 0; i < 20; i++) {
      expect(b.varied(i)).toBe(false);
      expect([b.get(i).scene, Array.from(b.get(i).image.data)]).toEqual([a.get(i).scene, Array.from(a.get(i).image.data)]);
    }
  });

  describe('rasteriser of varied scenes', () => {
    const bg: [number, number, number] = [240, 240, 240];
    const one = (shape: Partial<PlacedShape>, scene: Partial<ShapeScene> = {}): ShapeScene => ({
      shapes: [{ shape: 'triangle', color: 'red', size: 'large', position: 'center', cx: 0.5, cy: 0.5, radius: 0.3, ...shape }],
      background: bg, noiseStd: 0, noiseSeed: 1, ...scene,
    });
    const red = SHAPE_PALETTE.red as readonly number[];
    const at = (img: RgbImage, x: number, y: number): number[] => px(img, Math.floor(x * img.width), Math.floor(y * img.height));

    it('rotates triangles: turned half round, the tip points down', () => {
      const up = renderScene(one({}), 64), down = renderScene(one({ rotation: Math.PI }), 64);
      const R = 0.3 * 1.15;
      expect(at(up, 0.5, 0.5 - 0.8 * R)).toEqual(red);
      expect(at(up, 0.5, 0.5 + 0.8 * R)).toEqual(bg);
      expect(at(down, 0.5, 0.5 + 0.8 * R)).toEqual(red);
      expect(at(down, 0.5, 0.5 - 0.8 * R)).toEqual(bg);
    });

    it('draws outlines hollow, and without anti-aliasing only the two colours', () => {
      for (const shape of ['circle', 'square', 'triangle'] as const) {
        const img = renderScene(one({ shape, outline: 0.05 }), 64);
        expect(at(img, 0.5, 0.5), shape).toEqual(bg);
        const edge = shape === 'circle' ? 0.5 + 0.3 : shape === 'square' ? 0.5 + 0.3 * 0.88 : 0.5 + 0.3 * 1.15 / 2;
        expect(at(img, 0.5, edge), shape).toEqual(red);
      }
      const colours = (img: RgbImage): number => new Set(Array.from({ length: img.width * img.height }, (_, p) => img.data.slice(p * 3, p * 3 + 3).join())).size;
      expect(colours(renderScene(one({ rotation: 0.4 }, { supersample: 1 }), 64))).toBe(2);
      expect(colours(renderScene(one({ rotation: 0.4 }), 64))).toBeGreaterThan(5);
    });

    it('draws other aspect ratios with the shapes in the centred square, and gradients', () => {
      const wide = renderScene(one({ shape: 'circle' }, { aspect: 1.25, backgroundTo: [200, 200, 200] }), 64);
      expect([wide.width, wide.height]).toEqual([80, 64]);
      expect(px(wide, 40, 32)).toEqual(red);
      expect(px(wide, 0, 0)[0]).toBeGreaterThan(px(wide, 79, 63)[0] + 30);
      const tall = renderScene(one({ shape: 'circle' }, { aspect: 0.8 }), 64);
      expect([tall.width, tall.height]).toEqual([64, 80]);
      expect(px(tall, 32, 40)).toEqual(red);
    });

    it('librsvg draws the same rotated, outlined, tilted shapes from the SVG', async () => {
      for (const shape of [{ rotation: 1 }, { rotation: 2.5, form: 'isosceles' as const, outline: 0.06 }, { shape: 'square' as const, rotation: 0.5 }, { shape: 'circle' as const, outline: 0.04 }]) {
        const scene = one(shape, { aspect: 1.2, backgroundTo: [210, 220, 230] });
        const ours = renderScene(scene, 96);
        const svg = await sharp(Buffer.from(sceneToSvg(scene, 96))).removeAlpha().raw().toBuffer({ resolveWithObject: true });
        expect([svg.info.width, svg.info.height]).toEqual([ours.width, ours.height]);
        let diff = 0;
        for (let i = 0; i < ours.data.length; i++) diff += Math.abs(ours.data[i] - svg.data[i]);
        expect(diff / ours.data.length, JSON.stringify(shape)).toBeLessThan(3);
      }
    });
  });
});
