// The rule table is fully covered by the finite-difference cases, and the harness does catch a wrong rule.

import { describe, expect, it } from 'vitest';
import { VJP_RULES } from './index.js';
import { ALL_CASES } from './rule-cases.test-support.js';
import { checkRuleCase } from './rule-check.test-support.js';

describe('VJP rule table', () => {
  it('has a finite-difference case for every rule', () => {
    const covered = new Set(ALL_CASES.map((c) => c.op));
    const missing = Object.keys(VJP_RULES).filter((op) => !covered.has(op));
    expect(missing).toEqual([]);
  });

  it('covers the op list of the engine issue', () => {
    const required = `Add Sub Mul Div Neg Pow Sqrt Reciprocal Exp Log Tanh Sigmoid Relu LeakyRelu Erf Gelu Sin Cos Abs Clip
      Min Max Where MatMul Gemm Conv ConvTranspose Softmax LogSoftmax LayerNormalization InstanceNormalization
      GroupNormalization ReduceMean ReduceSum ReduceL2 ReduceMax Reshape Flatten Squeeze Unsqueeze Transpose Expand Tile
      Concat Split Slice Gather GatherElements Cast Identity Dropout Resize Pad Trilu SoftmaxCrossEntropyLoss`.split(/\s+/);
    expect(required.filter((op) => !VJP_RULES[op])).toEqual([]);
  });

  it('reports a wrong rule (the harness can fail)', async () => {
    const right = VJP_RULES.Tanh;
    // d tanh = 1 − y², replaced by the plausible-looking but wrong 1 − y.
    VJP_RULES.Tanh = (ctx) => [ctx.op('Mul', [ctx.gradOut(0)!, ctx.op('Sub', [ctx.scalarLike(1, ctx.output(0)), ctx.output(0)])])];
    try {
      const result = await checkRuleCase({ name: 'wrong Tanh', op: 'Tanh', inputs: [{ dims: [2, 3] }] });
      expect(result.failures.length).toBeGreaterThan(0);
    } finally {
      VJP_RULES.Tanh = right;
    }
  });
});
