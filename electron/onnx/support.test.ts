// Support checks: control flow refused by node name, unknown ops refused when asked, op census.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from './builder.js';
import { emptyGraph, newModel } from './ir.js';
import { loadModel } from './proto.js';
import { inferShapes } from './shapes.js';
import { SUPPORTED_OPS, assertSupported, opCensus } from './support.js';

const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures', import.meta.url));

function branch(name: string, value: number) {
  const g = emptyGraph(name);
  const b = new GraphBuilder(g);
  const out = b.op('Constant', [], { value: { dtype: 'float32', dims: [1], data: Float32Array.of(value) } });
  g.outputs.push({ name: out, dtype: 'float32', shape: [1] });
  return g;
}

describe('assertSupported', () => {
  it('rejects an If node by name, and names the file', () => {
    const g = emptyGraph();
    const b = new GraphBuilder(g);
    const c = b.input('cond', 'bool', []);
    b.op('If', [c], { then_branch: branch('then', 1), else_branch: branch('else', 2) }, { name: 'use_cache_branch' });
    const model = newModel(g, 17);
    expect(() => assertSupported(model, 'decoder_model_merged.onnx')).toThrow(
      /'decoder_model_merged\.onnx': node 'use_cache_branch' is a If: control flow is not supported/,
    );
    // Shape inference still describes the If outputs by dtype instead of throwing.
    expect(inferShapes(model).get('use_cache_branch_out')).toMatchObject({ dtype: 'float32', shape: null });
    expect(opCensus(model)).toEqual({ If: 1, Constant: 2 });
  });

  it('rejects Loop and Scan too', () => {
    for (const op of ['Loop', 'Scan']) {
      const g = emptyGraph();
      const b = new GraphBuilder(g);
      b.op(op, [b.input('x', 'float32', [1])], {}, { name: `my_${op}` });
      expect(() => assertSupported(newModel(g, 17))).toThrow(new RegExp(`node 'my_${op}' is a ${op}`));
    }
  });

  it('accepts the fixtures, and refuses unknown or contrib ops only when asked', () => {
    for (const name of ['gpt2_tiny', 'vit_tiny', 'mlp_projector']) {
      expect(() => assertSupported(loadModel(join(FIXTURES, `${name}.onnx`)), name, { requireKnownOps: true })).not.toThrow();
    }
    const g = emptyGraph();
    const b = new GraphBuilder(g);
    b.op('Attention', [b.input('x', 'float32', [1, 2, 4])], {}, { name: 'fused_attn', domain: 'com.microsoft' });
    const model = newModel(g, 17);
    expect(() => assertSupported(model)).not.toThrow();
    expect(() => assertSupported(model, 'opt.onnx', { requireKnownOps: true })).toThrow(
      /'opt\.onnx': node 'fused_attn' uses op com\.microsoft\.Attention, which is not supported/,
    );
    expect(opCensus(model)).toEqual({ 'com.microsoft.Attention': 1 });
  });
});

describe('opCensus', () => {
  it('counts every node of a fixture and agrees with the op list in its reference metadata', () => {
    const model = loadModel(join(FIXTURES, 'gpt2_tiny.onnx'));
    const census = opCensus(model);
    expect(Object.values(census).reduce((a, b) => a + b, 0)).toBe(model.graph.nodes.length);
    expect(Object.keys(census).sort().join(',')).toBe(
      'Add,Cast,Concat,Constant,Div,Gather,MatMul,Mul,Not,Pow,ReduceMean,Reshape,Softmax,Split,Sqrt,Sub,Tanh,Transpose,Trilu,Unsqueeze,Where',
    );
    expect(census.MatMul).toBe(13);
    for (const op of Object.keys(census)) expect(SUPPORTED_OPS.has(op)).toBe(true);
  });
});
