// The held-out evaluation set drawn by a renderer the zoo never trains on (models/eval-chromium/, made by
// models/chromium-eval-set.ts in headless Chromium): its labels file, read with zod, and its pictures.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SHAPE_COLORS, SHAPE_KINDS } from '../electron/engine/datasets/index.js';
import { hashBytes } from '../electron/engine/keys.js';

export const CHROMIUM_EVAL_DIR = join(import.meta.dirname, 'eval-chromium');
export const EVAL_SET_LABELS = 'labels.json';

const rgb = z.tuple([z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255)]);

/** One picture: what it shows (the label) and how it was drawn (what the per-kind table groups by). */
export const EvalSetImageSchema = z.strictObject({
  file: z.string().regex(/^[a-z0-9-]+\.(png|jpg)$/),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  color: z.enum(SHAPE_COLORS),
  shape: z.enum(SHAPE_KINDS),
  /** The CSS colour the shape was drawn in (not the training palette). */
  css: z.string(),
  width: z.number().int().min(8).max(1024),
  height: z.number().int().min(8).max(1024),
  /** canvas: Canvas 2D paths; css: styled divs (border-radius, clip-path, borders); svg: inline SVG. */
  renderer: z.enum(['canvas', 'css', 'svg']),
  fill: z.enum(['filled', 'outlined']),
  /** Outline width in pixels (outlined only). */
  lineWidth: z.number().positive().optional(),
  /** false: drawn without anti-aliasing (SVG crispEdges, or a canvas drawn at low resolution and scaled up unsmoothed). */
  antialias: z.boolean(),
  background: z.enum(['off-white', 'grey', 'pastel', 'gradient']),
  backgroundRgb: rgb,
  /** Bounding-circle radius of the shape as a fraction of the shorter side, and its centre in pixels. */
  radius: z.number().positive(),
  cx: z.number(),
  cy: z.number(),
  /** Rotation in degrees (0 for circles). */
  rotation: z.number(),
  /** Triangles: equilateral or a taller isosceles one. */
  triangle: z.enum(['equilateral', 'isosceles']).optional(),
  blurSigma: z.number().positive().optional(),
  jpegQuality: z.number().int().min(1).max(100).optional(),
});
export type EvalSetImage = z.infer<typeof EvalSetImageSchema>;

export const EvalSetSchema = z.strictObject({
  format: z.literal('composer.eval-set'),
  version: z.literal(1),
  name: z.string(),
  /** What drew the pictures (browser and version) and the seed that chose every picture's parameters. */
  renderer: z.string(),
  seed: z.number().int(),
  images: z.array(EvalSetImageSchema).min(1),
});
export type EvalSet = z.infer<typeof EvalSetSchema>;

export interface LoadedEvalImage extends EvalSetImage {
  bytes: Uint8Array;
}

/** The committed set: labels checked by zod, every picture read and checked against its sha256. */
export function readEvalSet(dir = CHROMIUM_EVAL_DIR): { set: EvalSet; images: LoadedEvalImage[] } {
  const path = join(dir, EVAL_SET_LABELS);
  const parsed = EvalSetSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${path}: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  const images = parsed.data.images.map((img) => {
    const bytes = new Uint8Array(readFileSync(join(dir, img.file)));
    if (hashBytes(bytes) !== img.sha256) throw new Error(`${join(dir, img.file)}: sha256 differs from ${EVAL_SET_LABELS}`);
    return { ...img, bytes };
  });
  return { set: parsed.data, images };
}

/**
 * The groups an image counts in for the per-kind table: its shape, renderer, fill, anti-aliasing, background, and
 * whether it was blurred / JPEG-compressed afterwards ('clean' when neither).
 */
export function evalSetGroups(img: EvalSetImage): string[] {
  const post = [...(img.blurSigma ? ['blurred'] : []), ...(img.jpegQuality ? ['jpeg'] : [])];
  return [
    img.shape, img.renderer, img.fill, img.antialias ? 'antialiased' : 'aliased', `bg-${img.background}`,
    ...(post.length ? post : ['clean']),
  ];
}
