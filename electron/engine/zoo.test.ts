// The built-in zoo out of the box: the committed weights match zoo.json and the templates, and the templates
// name colour and shape of held-out single shapes (and of the same scenes drawn by other software, resized,
// blurred or as JPEG) with the accuracy the README states. `npm run zoo` (models/zoo.ts) writes what this reads.

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from './executor.js';
import { hashBytes } from './keys.js';
import { parseGraphDocument } from './document.js';
import { evaluateTemplate, judge } from '../../models/zoo-eval.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const ZOO = join(ROOT, 'models', 'zoo');
const GRAPHS = join(ROOT, 'graphs');
const manifest = JSON.parse(readFileSync(join(ZOO, 'zoo.json'), 'utf8')) as {
  files: Record<string, { sha256: string; bytes: number }>;
  stages: Record<string, { seed: number; steps: number }>;
};

/** Templates the zoo trains, with the share of the 2×10 probe images each must get right. */
const CAPTIONING: Record<string, number> = {
  'blip2.graph.json': 0.9,
  'llava-1.5.graph.json': 0.9,
};

const executor = new Executor();
afterAll(() => executor.dispose());

describe('model zoo', () => {
  it('every zoo file is listed with its sha256, and the total stays within 40 MB', () => {
    let total = 0;
    for (const [file, entry] of Object.entries(manifest.files)) {
      const bytes = readFileSync(join(ZOO, file));
      expect(hashBytes(bytes), file).toBe(entry.sha256);
      total += bytes.length;
    }
    expect(Object.keys(manifest.files).length).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(40 * 1024 * 1024);
  });

  it('templates point at zoo files by relative path and matching sha256', () => {
    for (const file of [...Object.keys(CAPTIONING), 'clip.graph.json']) {
      const doc = parseGraphDocument(readFileSync(join(GRAPHS, file), 'utf8'), file);
      const linked = doc.nodes.filter((n) => n.weights);
      expect(linked.length, file).toBeGreaterThan(0);
      for (const n of linked) {
        const abs = resolve(GRAPHS, n.weights!.path);
        expect(existsSync(abs), `${file} node ${n.id}`).toBe(true);
        expect(n.weights!.sha256, `${file} node ${n.id}`).toBe(hashBytes(readFileSync(abs)));
      }
    }
  });

  it('judges a caption by its first colour and shape word', () => {
    expect(judge('a small red circle on the left', 'red', 'circle')).toEqual({ color: true, shape: true });
    expect(judge('a large blue square and a red circle', 'red', 'circle')).toEqual({ color: false, shape: false });
    expect(judge('two green triangles', 'green', 'triangle')).toEqual({ color: true, shape: true });
  });

  for (const [file, min] of Object.entries(CAPTIONING)) {
    it(`${file} names colour and shape of held-out and re-drawn single shapes`, async () => {
      const acc = await evaluateTemplate(executor, file, { images: 10, seed: 7 });
      expect((acc.heldout + acc.variants) / 2, JSON.stringify(acc)).toBeGreaterThanOrEqual(min);
    });
  }

  it('clip.graph.json classifies colour and shape zero-shot', async () => {
    const acc = await evaluateTemplate(executor, 'clip.graph.json', { images: 10, seed: 7 });
    expect((acc.heldout_color + acc.variants_color) / 2, JSON.stringify(acc)).toBeGreaterThanOrEqual(0.9);
    expect((acc.heldout_shape + acc.variants_shape) / 2, JSON.stringify(acc)).toBeGreaterThanOrEqual(0.9);
  });
});
