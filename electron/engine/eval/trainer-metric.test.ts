// The trainer's evaluation reports the task's paper metric next to the loss: CIDEr-D of greedy captions for
// captioning recipes, VQA accuracy for VQA recipes (R@1 for ITC is covered by the trainer's own tests).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseGraphDocument } from '../document.js';
import { train } from '../trainer/trainer.js';
import type { EvalMetrics } from '../trainer/metrics.js';

const GRAPHS = join(import.meta.dirname, '..', '..', '..', 'graphs');
const graph = (name: string) => parseGraphDocument(readFileSync(join(GRAPHS, `${name}.graph.json`), 'utf8'), `${name}.graph.json`);

async function evalMetrics(name: string, recipe: string): Promise<EvalMetrics[]> {
  const evals: EvalMetrics[] = [];
  await train({
    graph: graph(name), baseDir: GRAPHS, recipe, steps: 2, batchSize: 2, dataset: 'shapes', datasetSize: 16, evalEvery: 2, evalSamples: 4, evalGenerate: 4,
    shapes: { minShapes: 1, maxShapes: 1 }, onEvent: (e) => e.type === 'eval' && evals.push(e.metrics),
  });
  return evals;
}

describe('paper metric at eval', () => {
  it('captioning (blip2-stage2): CIDEr-D of the generated captions, high for the zoo BLIP-2', async () => {
    const [m] = await evalMetrics('blip2', 'blip2-stage2');
    expect(Object.keys(m).sort()).toEqual(['cider', 'eval_loss', 'token_accuracy']);
    expect(m.cider).toBeGreaterThan(1);
  }, 120_000);
  it('VQA (vqa recipe): VQA accuracy and exact match', async () => {
    const [m] = await evalMetrics('blip2', 'vqa');
    expect(m.vqa_accuracy).toBeGreaterThanOrEqual(0);
    expect(m.vqa_accuracy).toBeLessThanOrEqual(1);
    expect(m.exact_match).toBeDefined();
  }, 120_000);
});
