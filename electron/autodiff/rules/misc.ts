// VJP rules for the remaining ops of typical exports: masks and prefix sums (Trilu, CumSum), Einsum, scatters,
// the ONNX cross-entropy losses, and the less common activations.

import { tensorFromNumbers } from '../../onnx/ir.js';
import type { VjpContext, VjpRule } from '../context.js';

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** Gradient of a unary op as g · f'(x, y), with f' written with ctx ops. */
function unary(derivative: (ctx: VjpContext, x: string, y: string) => string): VjpRule {
  return (ctx) => [ctx.op('Mul', [ctx.gradOut(0)!, derivative(ctx, ctx.input(0), ctx.output(0))])];
}

/** Where(cond(x), a, b) on the cotangent, for piecewise activations. */
function piecewise(ctx: VjpContext, cond: string, a: string, b: string): string {
  return ctx.op('Where', [cond, a, b]);
}

const positive = (ctx: VjpContext, x: string) => ctx.op('Greater', [x, ctx.scalarLike(0, x)]);

// --- masks, prefix sums, casts ---

// Trilu keeps a triangle: the cotangent keeps the same one (k is a stop edge).
const trilu: VjpRule = (ctx) => {
  const inputs = ctx.hasInput(1) ? [ctx.gradOut(0)!, ctx.input(1)] : [ctx.gradOut(0)!];
  return [ctx.op('Trilu', inputs, { upper: ctx.attrInt('upper', 1) }), null];
};

// The adjoint of a prefix sum is the suffix sum (same exclusivity).
const cumSum: VjpRule = (ctx) => [
  ctx.op('CumSum', [ctx.gradOut(0)!, ctx.input(1)], {
    exclusive: ctx.attrInt('exclusive', 0),
    reverse: 1 - ctx.attrInt('reverse', 0),
  }),
  null,
];

const castLike: VjpRule = (ctx) => [ctx.op('Cast', [ctx.gradOut(0)!], { to: ctx.dtypeCode(ctx.input(0)) }), null];

// --- scatters: data keeps the cotangent except where it was overwritten; updates read it back at their indices ---

function scatterRule(gatherOp: 'GatherND' | 'GatherElements'): VjpRule {
  return (ctx) => {
    const g = ctx.gradOut(0)!;
    const reduction = ctx.attrString('reduction', 'none');
    if (reduction !== 'none' && reduction !== 'add') {
      throw ctx.error(`reduction '${reduction}' is not supported for training (only 'none' and 'add')`);
    }
    const axisAttrs = gatherOp === 'GatherElements' ? { axis: ctx.attrInt('axis', 0) } : {};
    const indices = ctx.input(1);
    const res: Array<string | null> = [null, null, null];
    if (ctx.needsGrad(0)) {
      res[0] =
        reduction === 'add'
          ? g
          : ctx.op(ctx.node.opType, [g, indices, ctx.zerosLike(ctx.input(2))], axisAttrs);
    }
    if (ctx.needsGrad(2)) res[2] = ctx.op(gatherOp, [g, indices], axisAttrs);
    return res;
  };
}

// --- Einsum ---

interface EinsumSpec {
  /** Per operand: its subscripts as single letters or '...'. */
  operands: string[][];
  output: string[];
}

function parseEinsum(ctx: VjpContext, equation: string): EinsumSpec {
  const eq = equation.replace(/\s+/g, '');
  if (!eq) throw ctx.error('equation is missing');
  const [lhs, rhs, extra] = eq.split('->');
  if (extra !== undefined) throw ctx.error(`equation '${equation}' has more than one '->'`);
  const tokenize = (term: string): string[] => {
    const out: string[] = [];
    for (let i = 0; i < term.length; ) {
      if (term.startsWith('...', i)) {
        out.push('...');
        i += 3;
      } else if (/[a-zA-Z]/.test(term[i])) {
        out.push(term[i++]);
      } else {
        throw ctx.error(`equation '${equation}' has an invalid subscript '${term[i]}'`);
      }
    }
    return out;
  };
  const operands = lhs.split(',').map(tokenize);
  if (operands.length !== ctx.node.inputs.length) {
    throw ctx.error(`equation '${equation}' has ${operands.length} operands but the node has ${ctx.node.inputs.length} inputs`);
  }
  if (rhs !== undefined) return { operands, output: tokenize(rhs) };
  // Implicit output: the ellipsis first, then the labels that occur once, in alphabetical (ASCII) order.
  const counts = new Map<string, number>();
  for (const op of operands) for (const t of op) if (t !== '...') counts.set(t, (counts.get(t) ?? 0) + 1);
  const once = [...counts].filter(([, c]) => c === 1).map(([l]) => l).sort();
  return { operands, output: [...(operands.some((o) => o.includes('...')) ? ['...'] : []), ...once] };
}

/**
 * Operand swap: dX_k = Einsum(g, X_j (j≠k) → subscripts of X_k). Three cases Einsum cannot express directly:
 * a label repeated within X_k (a diagonal) becomes a fresh label tied to it by an identity matrix; labels (or the
 * ellipsis) only X_k has are left out and broadcast back with Expand; size-1 ellipsis dims that broadcast are summed.
 */
const einsum: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const spec = parseEinsum(ctx, ctx.attrString('equation', ''));
  const inputs = ctx.node.inputs;
  const letters = new Set(spec.operands.flat().concat(spec.output));
  const fresh = () => {
    for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ') {
      if (!letters.has(c)) {
        letters.add(c);
        return c;
      }
    }
    throw ctx.error('too many subscripts to differentiate this equation');
  };
  const ellipsisRank = (k: number) => ctx.rank(inputs[k]) - spec.operands[k].filter((t) => t !== '...').length;

  return inputs.map((xk, k) => {
    if (!ctx.needsGrad(k)) return null;
    const ek = spec.operands[k].includes('...') ? ellipsisRank(k) : 0;
    // X_k's axis index of each subscript position.
    const axisOf: number[] = [];
    let axis = 0;
    for (const t of spec.operands[k]) {
      axisOf.push(axis);
      axis += t === '...' ? ek : 1;
    }

    // Einsum terms of the gradient and their operands.
    const terms: string[][] = [];
    const operands: string[] = [];
    const scalarG = spec.output.length === 0;
    if (!scalarG) {
      terms.push(spec.output);
      operands.push(g);
    }
    spec.operands.forEach((op, j) => {
      if (j === k) return;
      terms.push(op);
      operands.push(inputs[j]);
    });
    const target = [...spec.operands[k]];
    const seen = new Set<string>();
    target.forEach((t, i) => {
      if (t === '...') return;
      if (!seen.has(t)) {
        seen.add(t);
        return;
      }
      const f = fresh();
      target[i] = f;
      const d = ctx.op('Slice', [ctx.op('Shape', [xk]), ctx.b.ints([axisOf[i]]), ctx.b.ints([axisOf[i] + 1])]);
      const zeros = ctx.op('ConstantOfShape', [ctx.op('Concat', [d, d], { axis: 0 })], {
        value: tensorFromNumbers(ctx.dtype(xk), [1], [0]),
      });
      terms.push([t, f]);
      operands.push(ctx.op('EyeLike', [zeros]));
    });

    const available = new Set(terms.flat());
    const kept = target.filter((t) => available.has(t));
    // onnxruntime wants an ellipsis in the output whenever an input has one: when X_k has none, spell the ellipsis
    // dims out as explicit (summed) labels.
    if (available.has('...') && !kept.includes('...')) {
      const j = spec.operands.findIndex((op) => op.includes('...'));
      const labels = range(0, ellipsisRank(j)).map(() => fresh());
      for (let t = 0; t < terms.length; t++) terms[t] = terms[t].flatMap((l) => (l === '...' ? labels : [l]));
    }
    let r: string;
    if (operands.length > 0) {
      r = ctx.op('Einsum', operands, { equation: `${terms.map((t) => t.join('')).join(',')}->${kept.join('')}` });
      if (scalarG) r = ctx.op('Mul', [r, g]);
    } else {
      r = g;
    }

    // ONNX gives every ellipsis of an equation the same rank, but size-1 dims of X_k's may have been broadcast:
    // sum the cotangent over them (harmless where nothing was broadcast).
    const at = kept.indexOf('...');
    if (at >= 0) {
      const xs = ctx.shape(xk);
      const first = axisOf[spec.operands[k].indexOf('...')];
      const ones = range(0, ek).filter((i) => xs?.[first + i] === 1);
      if (ones.length) r = ctx.b.reduceSum(r, ones.map((i) => at + i), true);
    }

    // Broadcast back along what X_k alone had.
    const missing: number[] = [];
    target.forEach((t, i) => {
      if (available.has(t)) return;
      if (t === '...') missing.push(...range(axisOf[i], axisOf[i] + ek));
      else missing.push(axisOf[i]);
    });
    if (missing.length) {
      r = ctx.op('Expand', [ctx.op('Unsqueeze', [r, ctx.b.ints(missing)]), ctx.op('Shape', [xk])]);
    }
    return r;
  });
};

// --- losses (ONNX SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss; class axis 1) ---

/**
 * Shared pieces of both losses: the one-hot of the (ignore-safe) labels over axis 1, and each position's factor
 * dL/dloss_i = weight[label]·valid·(g, or g/Σweights for 'mean'), shaped to broadcast against [N, C, ...].
 */
function lossParts(ctx: VjpContext): { onehot: string; factor: string | null } {
  const scores = ctx.input(0);
  const rank = ctx.rank(scores);
  const to = ctx.dtypeCode(scores);
  const reduction = ctx.attrString('reduction', 'mean');
  if (!['none', 'sum', 'mean'].includes(reduction)) throw ctx.error(`unknown reduction '${reduction}'`);
  const labels = ctx.op('Cast', [ctx.input(1)], { to: 7 });
  const ignore = ctx.node.attrs.ignore_index ? ctx.attrInt('ignore_index', 0) : null;
  const valid = ignore === null ? null : ctx.op('Not', [ctx.op('Equal', [labels, ctx.b.constant('int64', [], [ignore])])]);
  const safe = valid ? ctx.op('Where', [valid, labels, ctx.b.constant('int64', [], [0])]) : labels;

  const classCount = ctx.op('Gather', [ctx.op('Shape', [scores]), ctx.b.constant('int64', [], [1])]);
  const classes = ctx.op('Range', [ctx.b.constant('int64', [], [0]), classCount, ctx.b.constant('int64', [], [1])]);
  const classAxis = ctx.op('Reshape', [classes, ctx.b.ints([1, -1, ...Array(rank - 2).fill(1)])]);
  const onehot = ctx.op('Cast', [ctx.op('Equal', [classAxis, ctx.op('Unsqueeze', [safe, ctx.b.ints([1])])])], { to });

  const gLoss = ctx.gradOut(0);
  if (!gLoss) return { onehot, factor: null };
  let weight: string | null = ctx.hasInput(2) ? ctx.op('Gather', [ctx.input(2), safe]) : null;
  if (valid) {
    const v = ctx.op('Cast', [valid], { to });
    weight = weight ? ctx.op('Mul', [weight, v]) : v;
  }
  let factor: string;
  if (reduction === 'mean') {
    const denom = weight
      ? ctx.b.reduceSum(weight, range(0, rank - 1), false)
      : ctx.op('Cast', [ctx.op('Size', [labels])], { to });
    const zero = ctx.scalarLike(0, scores);
    const safeDenom = ctx.op('Where', [ctx.op('Equal', [denom, zero]), ctx.scalarLike(1, scores), denom]);
    const scale = ctx.op('Div', [gLoss, safeDenom]);
    factor = weight ? ctx.op('Mul', [weight, scale]) : scale;
  } else {
    factor = weight ? ctx.op('Mul', [weight, gLoss]) : gLoss;
  }
  const perPosition = weight !== null || reduction === 'none';
  return { onehot, factor: perPosition ? ctx.op('Unsqueeze', [factor, ctx.b.ints([1])]) : factor };
}

// d/dscores = (softmax − onehot)·factor, plus LogSoftmax's VJP for a used log_prob output.
const softmaxCrossEntropy: VjpRule = (ctx) => {
  const scores = ctx.input(0);
  const logProb = ctx.ensureOutput(1, 'log_prob', ctx.dtype(scores), ctx.shape(scores));
  const prob = ctx.op('Exp', [logProb]);
  const { onehot, factor } = lossParts(ctx);
  let d: string | null = factor ? ctx.op('Mul', [ctx.op('Sub', [prob, onehot]), factor]) : null;
  const gLogProb = ctx.gradOut(1);
  if (gLogProb) {
    const part = ctx.op('Sub', [gLogProb, ctx.op('Mul', [prob, ctx.b.reduceSum(gLogProb, [1], true)])]);
    d = d ? ctx.op('Add', [d, part]) : part;
  }
  return [d, null, null];
};

// loss_i = −weight[t_i]·x[i, t_i]: d/dx = −onehot·factor.
const negativeLogLikelihood: VjpRule = (ctx) => {
  const { onehot, factor } = lossParts(ctx);
  return [factor ? ctx.op('Neg', [ctx.op('Mul', [onehot, factor])]) : null, null, null];
};

// --- activations ---

const hardSigmoid: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const alpha = ctx.attrFloat('alpha', 0.2);
  const beta = ctx.attrFloat('beta', 0.5);
  const z = ctx.op('Add', [ctx.op('Mul', [x, ctx.scalarLike(alpha, x)]), ctx.scalarLike(beta, x)]);
  const inside = ctx.op('And', [ctx.op('Greater', [z, ctx.scalarLike(0, x)]), ctx.op('Less', [z, ctx.scalarLike(1, x)])]);
  const g = ctx.gradOut(0)!;
  return [piecewise(ctx, inside, ctx.op('Mul', [g, ctx.scalarLike(alpha, x)]), ctx.scalarLike(0, x))];
};

// HardSwish = x·HardSigmoid(x; 1/6, 1/2): slope 0 below −3, 1 above 3, x/3 + 1/2 between.
const hardSwish: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const g = ctx.gradOut(0)!;
  const middle = ctx.op('Mul', [g, ctx.op('Add', [ctx.op('Mul', [x, ctx.scalarLike(1 / 3, x)]), ctx.scalarLike(0.5, x)])]);
  const upper = piecewise(ctx, ctx.op('Greater', [x, ctx.scalarLike(3, x)]), g, middle);
  return [piecewise(ctx, ctx.op('Less', [x, ctx.scalarLike(-3, x)]), ctx.scalarLike(0, x), upper)];
};

// Elu/Selu/Celu: below 0 the slope follows from the output (y + γα, y + α, y/α + 1).
const elu: VjpRule = (ctx) => {
  const [x, y, g] = [ctx.input(0), ctx.output(0), ctx.gradOut(0)!];
  const alpha = ctx.attrFloat('alpha', 1);
  return [piecewise(ctx, positive(ctx, x), g, ctx.op('Mul', [g, ctx.op('Add', [y, ctx.scalarLike(alpha, x)])]))];
};
const selu: VjpRule = (ctx) => {
  const [x, y, g] = [ctx.input(0), ctx.output(0), ctx.gradOut(0)!];
  const alpha = ctx.attrFloat('alpha', 1.67326319217681884765625);
  const gamma = ctx.attrFloat('gamma', 1.05070102214813232421875);
  const below = ctx.op('Mul', [g, ctx.op('Add', [y, ctx.scalarLike(gamma * alpha, x)])]);
  return [piecewise(ctx, positive(ctx, x), ctx.op('Mul', [g, ctx.scalarLike(gamma, x)]), below)];
};
const celu: VjpRule = (ctx) => {
  const [x, y, g] = [ctx.input(0), ctx.output(0), ctx.gradOut(0)!];
  const alpha = ctx.attrFloat('alpha', 1);
  const below = ctx.op('Mul', [g, ctx.op('Add', [ctx.op('Div', [y, ctx.scalarLike(alpha, x)]), ctx.scalarLike(1, x)])]);
  return [piecewise(ctx, positive(ctx, x), g, below)];
};

// PRelu: slope broadcasts to X; its gradient is summed back over the broadcast axes.
const prelu: VjpRule = (ctx) => {
  const [x, slope, y, g] = [ctx.input(0), ctx.input(1), ctx.output(0), ctx.gradOut(0)!];
  const pos = positive(ctx, x);
  const zero = ctx.scalarLike(0, x);
  return [
    ctx.needsGrad(0) ? piecewise(ctx, pos, g, ctx.op('Mul', [g, slope])) : null,
    ctx.needsGrad(1) ? ctx.sumTo(piecewise(ctx, pos, zero, ctx.op('Mul', [g, x])), slope, y) : null,
  ];
};

const thresholdedRelu: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const above = ctx.op('Greater', [x, ctx.scalarLike(ctx.attrFloat('alpha', 1), x)]);
  return [piecewise(ctx, above, ctx.gradOut(0)!, ctx.scalarLike(0, x))];
};

const shrink: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const outside = ctx.op('Greater', [ctx.op('Abs', [x]), ctx.scalarLike(ctx.attrFloat('lambd', 0.5), x)]);
  return [piecewise(ctx, outside, ctx.gradOut(0)!, ctx.scalarLike(0, x))];
};

// Mish = x·tanh(softplus(x)): t + x·(1 − t²)·sigmoid(x).
const mish = unary((ctx, x) => {
  const t = ctx.op('Tanh', [ctx.op('Softplus', [x])]);
  const sech2 = ctx.op('Sub', [ctx.scalarLike(1, x), ctx.op('Mul', [t, t])]);
  return ctx.op('Add', [t, ctx.op('Mul', [ctx.op('Mul', [x, sech2]), ctx.op('Sigmoid', [x])])]);
});

const onePlusSquare = (ctx: VjpContext, v: string) => ctx.op('Add', [ctx.scalarLike(1, v), ctx.op('Mul', [v, v])]);
const oneMinusSquare = (ctx: VjpContext, v: string) => ctx.op('Sub', [ctx.scalarLike(1, v), ctx.op('Mul', [v, v])]);

export const miscRules: Record<string, VjpRule> = {
  Trilu: trilu,
  CumSum: cumSum,
  CastLike: castLike,
  ScatterND: scatterRule('GatherND'),
  ScatterElements: scatterRule('GatherElements'),
  Einsum: einsum,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropy,
  NegativeLogLikelihoodLoss: negativeLogLikelihood,
  HardSigmoid: hardSigmoid,
  HardSwish: hardSwish,
  Elu: elu,
  Selu: selu,
  Celu: celu,
  PRelu: prelu,
  ThresholdedRelu: thresholdedRelu,
  Shrink: shrink,
  Mish: mish,
  // 1/(1 + |x|)²
  Softsign: unary((ctx, x) => {
    const d = ctx.op('Add', [ctx.scalarLike(1, x), ctx.op('Abs', [x])]);
    return ctx.op('Reciprocal', [ctx.op('Mul', [d, d])]);
  }),
  Tan: unary((ctx, _x, y) => onePlusSquare(ctx, y)),
  Atan: unary((ctx, x) => ctx.op('Reciprocal', [onePlusSquare(ctx, x)])),
  Asin: unary((ctx, x) => ctx.op('Reciprocal', [ctx.op('Sqrt', [oneMinusSquare(ctx, x)])])),
  Acos: unary((ctx, x) => ctx.op('Neg', [ctx.op('Reciprocal', [ctx.op('Sqrt', [oneMinusSquare(ctx, x)])])])),
  Sinh: unary((ctx, x) => ctx.op('Cosh', [x])),
  Cosh: unary((ctx, x) => ctx.op('Sinh', [x])),
};
