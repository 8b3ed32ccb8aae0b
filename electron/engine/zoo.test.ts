// The built-in zoo out of the box: the committed weights match zoo.json and the templates that load them, the
// trained templates name colour and shape of held-out single shapes (and of the same scenes drawn by other software,
// resized, blurred or as JPEG), and the drawing templates draw the asked colour and shape, at the measured level
// minus a small margin. `npm run zoo` (models/zoo.ts) writes what
// this reads; the figures on 40 images are in models/zoo/zoo.json. The guards are checked against the same template
// with its zoo weights removed, so they fail on an untrained model.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from './executor.js';
import { hashBytes } from './keys.js';
import { type GraphDocument, parseGraphDocument } from './document.js';
import { evaluateEvalSet, evaluateTemplate, judge, readDrawing } from '../../models/zoo-eval.js';
import { readEvalSet } from '../../models/eval-set.js';
import { ShapesDataset, shapeSamplePng } from './datasets/index.js';
import { mapRunInputs } from './run.js';
import { TEMPLATE_WEIGHTS } from '../../models/zoo.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const ZOO = join(ROOT, 'models', 'zoo');
const GRAPHS = join(ROOT, 'graphs');
const manifest = JSON.parse(readFileSync(join(ZOO, 'zoo.json'), 'utf8')) as {
  files: Record<string, { sha256: string; bytes: number }>;
  stages: Record<string, { seed: number; steps: number }>;
};

/** The images zoo.json reports on (40 held-out + their 360 variants, or 36 drawings); all templates together take about a minute. */
const PROBE = { images: 40, seed: 99 };

type Accuracy = Record<string, number>;
/** Minimum accuracies per template: the figures measured by `npm run zoo` (zoo.json) minus a margin. */
const GUARDS: Record<string, Accuracy> = {
  // Measured (40 held-out scenes / the same scenes in all 9 re-drawn variants, 360), colour / shape / both:
  // 1.00 / 0.95 / 0.95 and 1.00 / 0.936 / 0.936.
  'llava-1.5.graph.json': { heldout_color: 0.9, heldout_shape: 0.9, heldout: 0.9, variants_color: 0.95, variants_shape: 0.88, variants: 0.88 },
  // Measured: 1.00 / 0.975 / 0.975 and 1.00 / 0.942 / 0.942.
  'minigpt4.graph.json': { heldout_color: 0.9, heldout_shape: 0.9, heldout: 0.9, variants_color: 0.95, variants_shape: 0.89, variants: 0.89 },
  // Measured: 1.00 / 0.975 / 0.975 and 1.00 / 0.931 / 0.931.
  'blip2.graph.json': { heldout_color: 0.9, heldout_shape: 0.9, heldout: 0.9, variants_color: 0.95, variants_shape: 0.88, variants: 0.88 },
  // Measured: 1.00 / 0.975 / 0.975 and 1.00 / 0.956 / 0.956.
  'instructblip.graph.json': { heldout_color: 0.9, heldout_shape: 0.9, heldout: 0.9, variants_color: 0.95, variants_shape: 0.9, variants: 0.9 },
  // Zero-shot over the 18 labels, measured: 1.00 / 0.975 / 0.975 and 0.997 / 0.917 / 0.914. Chance: 1/6 colour, 1/3 shape.
  'clip.graph.json': { heldout_color: 0.9, heldout_shape: 0.9, heldout: 0.9, variants_color: 0.95, variants_shape: 0.86, variants: 0.86 },
  // Drawings of the 18 colour × shape requests, 2 noise seeds each, read off their pixels (colour / shape / both).
  // Measured: 0.97 / 0.89 / 0.86.
  'text-to-image.graph.json': { drawn_color: 0.85, drawn_shape: 0.8, drawn: 0.75 },
  // Measured: 0.94 / 0.89 / 0.86 (the LLM's signal tokens → output projector → the same UNet).
  'nextgpt.graph.json': { drawn_color: 0.85, drawn_shape: 0.8, drawn: 0.75 },
};

/**
 * Minimum accuracies on the held-out set drawn in headless Chromium (models/eval-chromium/, 90 pictures no zoo stage
 * trains on; zoo.json chromiumEval), colour / shape / both, measured minus a margin. Far below the ≥ 0.9 aim of
 * issue 15: the zoo names colour but barely shape on pictures drawn by another renderer (chance 1/6 and 1/3).
 */
const CHROMIUM_GUARDS: Record<string, Accuracy> = {
  // Measured 0.967 / 0.40 / 0.378.
  'llava-1.5.graph.json': { chromium_color: 0.92, chromium_shape: 0.35, chromium: 0.33 },
  // Measured 0.978 / 0.433 / 0.411.
  'minigpt4.graph.json': { chromium_color: 0.92, chromium_shape: 0.38, chromium: 0.36 },
  // Measured 0.978 / 0.40 / 0.40.
  'blip2.graph.json': { chromium_color: 0.92, chromium_shape: 0.35, chromium: 0.35 },
  // Measured 0.978 / 0.40 / 0.389.
  'instructblip.graph.json': { chromium_color: 0.92, chromium_shape: 0.35, chromium: 0.33 },
  // Zero-shot over the 18 labels, measured 0.989 / 0.40 / 0.389.
  'clip.graph.json': { chromium_color: 0.92, chromium_shape: 0.35, chromium: 0.33 },
};

const failedGuards = (acc: Accuracy, guard: Accuracy): string[] =>
  Object.entries(guard).filter(([metric, min]) => !(acc[metric] >= min)).map(([metric, min]) => `${metric} ${acc[metric]} < ${min}`);

function template(file: string): GraphDocument {
  return parseGraphDocument(readFileSync(join(GRAPHS, file), 'utf8'), file);
}

const executor = new Executor();
afterAll(() => executor.dispose());

describe('model zoo', () => {
  it('models/zoo holds exactly the files templates load, each listed with its sha256, within 40 MB', () => {
    const used = new Set(Object.values(TEMPLATE_WEIGHTS).flatMap((w) => Object.values(w)));
    const onDisk = readdirSync(ZOO).filter((f) => f.endsWith('.safetensors'));
    expect(new Set(onDisk)).toEqual(used);
    expect(new Set(Object.keys(manifest.files))).toEqual(used);
    let total = 0;
    for (const [file, entry] of Object.entries(manifest.files)) {
      const bytes = readFileSync(join(ZOO, file));
      expect(hashBytes(bytes), file).toBe(entry.sha256);
      expect(bytes.length, file).toBe(entry.bytes);
      total += bytes.length;
    }
    expect(total).toBeLessThanOrEqual(40 * 1024 * 1024);
  });

  it('templates load their zoo files by relative path and matching sha256', () => {
    for (const [file, weights] of Object.entries(TEMPLATE_WEIGHTS)) {
      const doc = template(file);
      for (const [id, zooFile] of Object.entries(weights)) {
        const node = doc.nodes.find((n) => n.id === id);
        expect(node?.weights?.path, `${file} node ${id}`).toBe(`../models/zoo/${zooFile}`);
        const abs = resolve(GRAPHS, node!.weights!.path);
        expect(existsSync(abs), `${file} node ${id}`).toBe(true);
        expect(node!.weights!.sha256, `${file} node ${id}`).toBe(hashBytes(readFileSync(abs)));
      }
    }
  });

  it('every trained node of a template loads its weights from a file: a different graph seed gives the same answer', async () => {
    // LLaMA's word embedding is the Embed tokens node's own table (untied head): it must ship, not come from the seed.
    const png = await shapeSamplePng(new ShapesDataset({ seed: 99, split: 'eval', numSamples: 1, minShapes: 1, maxShapes: 1 }).get(0));
    for (const file of ['llava-1.5.graph.json', 'minigpt4.graph.json', 'instructblip.graph.json']) {
      const doc = template(file);
      const answer = async (seed: number) => {
        const res = await executor.run({ ...doc, seed }, { baseDir: GRAPHS, inputs: mapRunInputs(doc, { image: { name: 'i.png', bytes: png }, prompt: 'Describe the image.' }) });
        return res.outputs.llm?.text;
      };
      const a = await answer(0);
      expect(a, file).toMatch(/\w/);
      expect(await answer(777), file).toBe(a);
    }
  });

  it('judges a caption by its first colour and shape word', () => {
    expect(judge('a small red circle on the left', 'red', 'circle')).toEqual({ color: true, shape: true });
    expect(judge('a large blue square and a red circle', 'red', 'circle')).toEqual({ color: false, shape: false });
    expect(judge('two green triangles', 'green', 'triangle')).toEqual({ color: true, shape: true });
  });

  it('reads colour and shape off drawings of one shape, at 32 px zoomed as the generator draws and at 64 px', () => {
    for (const opts of [{ size: 32, zoom: 2 }, { size: 64, zoom: 1 }]) {
      const ds = new ShapesDataset({ seed: 12, numSamples: 60, minShapes: 1, maxShapes: 1, positions: ['center'], ...opts });
      let color = 0, shape = 0;
      for (const s of ds) {
        const seen = readDrawing(s.image);
        color += seen.color === s.description[0].color ? 1 : 0;
        shape += seen.shape === s.description[0].shape ? 1 : 0;
      }
      expect(color / ds.length, `colour at ${opts.size} px`).toBe(1);
      expect(shape / ds.length, `shape at ${opts.size} px`).toBeGreaterThanOrEqual(0.95);
    }
    const blank = new Uint8Array(32 * 32 * 3).fill(235);
    expect(readDrawing({ width: 32, height: 32, data: blank })).toEqual({});
  });

  for (const [file, guard] of Object.entries(GUARDS)) {
    const what = 'drawn' in guard ? 'draws the asked colour and shape' : 'names colour and shape of held-out and re-drawn single shapes';
    it(`${file} ${what}`, async () => {
      const acc = await evaluateTemplate(executor, file, PROBE);
      expect(failedGuards(acc, guard), JSON.stringify(acc)).toEqual([]);
    });
  }

  for (const [file, guard] of Object.entries(CHROMIUM_GUARDS)) {
    it(`${file} names colour and shape of the held-out pictures drawn in Chromium at the measured level`, async () => {
      const acc = await evaluateEvalSet(executor, file);
      expect(failedGuards(acc, guard), JSON.stringify(acc)).toEqual([]);
    });

    it(`the ${file} Chromium-set guards fail for the same template without its zoo weights (seeded init)`, async () => {
      const untrained = template(file);
      for (const n of untrained.nodes) delete n.weights;
      const acc = await evaluateEvalSet(executor, file, { doc: untrained, images: readEvalSet().images.slice(0, 30) });
      expect(failedGuards(acc, guard).length, JSON.stringify(acc)).toBeGreaterThan(0);
    });
  }

  for (const file of Object.keys(GUARDS)) {
    it(`the ${file} guards fail for the same template without its zoo weights (seeded init)`, async () => {
      const untrained = template(file);
      for (const n of untrained.nodes) delete n.weights;
      const acc = await evaluateTemplate(executor, file, { images: 12, seed: PROBE.seed, doc: untrained });
      expect(failedGuards(acc, GUARDS[file]).length, JSON.stringify(acc)).toBeGreaterThan(0);
    });
  }
});
