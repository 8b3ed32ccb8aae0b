import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tensorToNumbers } from '../../onnx/ir.js';
import { type GraphDocument, parseGraphDocument } from '../document.js';
import { train } from './trainer.js';

const graphsDir = join(import.meta.dirname, '..', '..', '..', 'graphs');
const blip2 = (): GraphDocument => parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');

describe('gradient accumulation', () => {
  it('2 micro-batches of 2 equal one batch of 4 (loss and updated weights), captions of different lengths', async () => {
    const common = { baseDir: graphsDir, recipe: 'blip2-stage2', steps: 2, learningRate: 0.05, optimizer: 'sgd', dataset: 'shapes', datasetSize: 8, seed: 3 } as const;
    const big = await train({ ...common, graph: blip2(), batchSize: 4 });
    const acc = await train({ ...common, graph: blip2(), batchSize: 2, accumulate: 2 });
    expect(acc.losses).toHaveLength(2);
    for (let i = 0; i < 2; i++) expect(acc.losses[i]).toBeCloseTo(big.losses[i], 4);
    let maxDiff = 0;
    let maxMove = 0;
    for (const [name, v] of big.params) {
      const a = tensorToNumbers(acc.params.get(name)!);
      const b = tensorToNumbers(v);
      const init = tensorToNumbers(big.built.initial.get(name)!);
      b.forEach((x, i) => {
        maxDiff = Math.max(maxDiff, Math.abs(x - a[i]));
        maxMove = Math.max(maxMove, Math.abs(x - init[i]));
      });
    }
    // The weights moved (SGD: proportional to the gradient) and agree far more closely than that.
    expect(maxMove).toBeGreaterThan(1e-3);
    expect(maxDiff).toBeLessThan(2e-5);
  });
});
