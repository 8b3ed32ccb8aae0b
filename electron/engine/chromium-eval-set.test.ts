// The committed held-out set drawn in Chromium (models/eval-chromium/, made by models/chromium-eval-set.ts): its
// labels parse, every picture is there with its hash and size, the 18 classes are balanced, and the variations the
// set is for (renderers, outlines, rotated triangles, no anti-aliasing, backgrounds, blur, JPEG) are actually in it.

import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHROMIUM_EVAL_DIR, evalSetGroups, readEvalSet } from '../../models/eval-set.js';
import { drawSpecs, specHtml } from '../../models/chromium-eval-set.js';
import { SHAPE_COLORS, SHAPE_KINDS } from './datasets/index.js';
import { decodeImage } from './image.js';

describe('chromium eval set', () => {
  const { set, images } = readEvalSet();

  it('holds 90 pictures, 5 per colour × shape class, each at its stated size, within 1 MB', async () => {
    expect(images).toHaveLength(90);
    for (const c of SHAPE_COLORS) {
      for (const k of SHAPE_KINDS) expect(images.filter((i) => i.color === c && i.shape === k), `${c} ${k}`).toHaveLength(5);
    }
    let bytes = 0;
    for (const img of images) {
      const rgb = await decodeImage(img.bytes, img.file);
      expect([rgb.width, rgb.height], img.file).toEqual([img.width, img.height]);
      expect(img.width).toBeGreaterThanOrEqual(96);
      expect(img.width).toBeLessThanOrEqual(128);
      expect(img.file.endsWith('.jpg'), img.file).toBe(img.jpegQuality !== undefined);
      bytes += img.bytes.length;
    }
    expect(bytes).toBeLessThan(1024 * 1024);
    expect(set.renderer).toMatch(/Chromium/);
  });

  it('varies the way other people draw: renderers, outlines, rotations, aliasing, backgrounds, blur, JPEG', () => {
    const groups = new Map<string, number>();
    for (const img of images) for (const g of evalSetGroups(img)) groups.set(g, (groups.get(g) ?? 0) + 1);
    for (const g of ['canvas', 'css', 'svg', 'filled', 'outlined', 'antialiased', 'aliased', 'bg-off-white', 'bg-grey', 'bg-pastel', 'bg-gradient', 'blurred', 'jpeg', 'clean']) {
      expect(groups.get(g) ?? 0, g).toBeGreaterThanOrEqual(5);
    }
    const triangles = images.filter((i) => i.shape === 'triangle');
    // Rotated off upright (an equilateral triangle repeats every 120°).
    expect(triangles.filter((t) => Math.abs(((t.rotation % 120) + 120) % 120) > 10).length).toBeGreaterThan(triangles.length / 2);
    expect(triangles.some((t) => t.triangle === 'isosceles')).toBe(true);
    expect(images.filter((i) => i.shape === 'square' && i.rotation !== 0).length).toBeGreaterThan(3);
    // None drawn in the training palette's exact colours.
    expect(images.every((i) => !/^rgb\((215, 40, 40|40, 160, 60|40, 80, 215|230, 195, 25|135, 55, 175|240, 125, 25)\)$/.test(i.css))).toBe(true);
  });

  it('is a function of the seed: the committed labels are what the generator draws for its seed', () => {
    const specs = drawSpecs(set.seed, 5);
    expect(specs).toEqual(images.map(({ file: _f, sha256: _s, bytes: _b, ...spec }) => spec));
    expect(drawSpecs(set.seed, 5)).toEqual(specs);
    expect(drawSpecs(set.seed + 1, 5)).not.toEqual(specs);
    // Each picture's page draws with the renderer the label names.
    const html = specHtml(specs.find((s) => s.renderer === 'canvas')!);
    expect(html).toContain('getContext(\'2d\')');
    expect(specHtml(specs.find((s) => s.renderer === 'svg')!)).toContain('<svg');
    expect(specHtml(specs.find((s) => s.renderer === 'css' && s.shape === 'circle')!)).toContain('border-radius:50%');
  });

  it('refuses a picture whose bytes differ from its labelled sha256, and labels outside the schema', () => {
    const dir = mkdtempSync(join(tmpdir(), 'evalset-'));
    try {
      cpSync(CHROMIUM_EVAL_DIR, dir, { recursive: true });
      writeFileSync(join(dir, images[0].file), Buffer.from('not the picture'));
      expect(() => readEvalSet(dir)).toThrow(/sha256 differs/);
      writeFileSync(join(dir, 'labels.json'), JSON.stringify({ ...set, images: [{ ...set.images[0], color: 'pink' }] }));
      expect(() => readEvalSet(dir)).toThrow(/images\.0\.color/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
