import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { tensorFromNumbers } from './ir.js';
import { detectExecutionProviders, runModel } from './ort.js';
import { GraphBuilder } from './builder.js';
import { emptyGraph, newModel } from './ir.js';

describe('execution providers', () => {
  it('reports only providers that run a model, best first, ending with the CPU', async () => {
    const eps = await detectExecutionProviders();
    expect(eps.at(-1)).toBe('cpu');
    const listed = ort.listSupportedBackends().map((b) => b.name);
    for (const ep of eps) expect(ep === 'cpu' || listed.includes(ep)).toBe(true);
    const g = emptyGraph('neg');
    const b = new GraphBuilder(g);
    b.input('x', 'float32', [2]);
    b.op('Neg', ['x'], {}, { outputs: ['y'] });
    b.output('y', 'float32', [2]);
    for (const ep of eps) {
      const out = await runModel(newModel(g, 17), { x: tensorFromNumbers('float32', [2], [1, -2]) }, { executionProviders: [ep] });
      expect(Array.from(out.y.data as Float32Array)).toEqual([-1, 2]);
    }
  });
});
