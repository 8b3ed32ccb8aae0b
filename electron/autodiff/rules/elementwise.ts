// VJP rules for elementwise ops. Broadcasting is undone with ctx.sumTo; constants take the dtype of the cotangent.

import type { VjpContext, VjpRule } from '../context.js';

/** Gradient of a unary op as g * f'(x), where f' is written with the builder. */
function unary(derivative: (ctx: VjpContext, x: string, y: string) => string): VjpRule {
  return (ctx) => {
    const g = ctx.gradOut(0)!;
    return [ctx.op('Mul', [g, derivative(ctx, ctx.input(0), ctx.output(0))])];
  };
}

const add: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const y = ctx.output(0);
  return [
    ctx.needsGrad(0) ? ctx.sumTo(g, ctx.input(0), y) : null,
    ctx.needsGrad(1) ? ctx.sumTo(g, ctx.input(1), y) : null,
  ];
};

const sub: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const y = ctx.output(0);
  return [
    ctx.needsGrad(0) ? ctx.sumTo(g, ctx.input(0), y) : null,
    ctx.needsGrad(1) ? ctx.op('Neg', [ctx.sumTo(g, ctx.input(1), y)]) : null,
  ];
};

const mul: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const [a, b] = [ctx.input(0), ctx.input(1)];
  const y = ctx.output(0);
  return [
    ctx.needsGrad(0) ? ctx.sumTo(ctx.op('Mul', [g, b]), a, y) : null,
    ctx.needsGrad(1) ? ctx.sumTo(ctx.op('Mul', [g, a]), b, y) : null,
  ];
};

// dA = g / B; dB = -g * Y / B (uses Y to avoid B² overflow).
const div: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const [a, b] = [ctx.input(0), ctx.input(1)];
  const y = ctx.output(0);
  const gOverB = ctx.op('Div', [g, b]);
  return [
    ctx.needsGrad(0) ? ctx.sumTo(gOverB, a, y) : null,
    ctx.needsGrad(1) ? ctx.sumTo(ctx.op('Neg', [ctx.op('Mul', [gOverB, y])]), b, y) : null,
  ];
};

// Sum / Mean over many inputs: each input gets the (scaled) cotangent, unbroadcast.
const sum: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  return ctx.node.inputs.map((x, i) => (ctx.needsGrad(i) ? ctx.sumTo(g, x, ctx.output(0)) : null));
};
const mean: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const scaled = ctx.op('Mul', [g, ctx.scalarLike(1 / ctx.node.inputs.length, ctx.output(0))]);
  return ctx.node.inputs.map((x, i) => (ctx.needsGrad(i) ? ctx.sumTo(scaled, x, ctx.output(0)) : null));
};

// Pow(X, c): dX = g * c * X^(c-1); the exponent is a stop edge (error if it were trainable).
const pow: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const c = ctx.input(1);
  const y = ctx.output(0);
  const cv = ctx.constValues(1);
  let local: string;
  if (cv && cv.length === 1 && cv[0] === 2) {
    local = ctx.op('Mul', [x, ctx.scalarLike(2, x)]);
  } else if (cv && cv.length === 1 && cv[0] === 1) {
    return [ctx.sumTo(g, x, y), null];
  } else {
    const cx = ctx.dtype(c) === ctx.dtype(x) ? c : ctx.op('Cast', [c], { to: ctx.dtypeCode(x) });
    const cm1 = ctx.op('Sub', [cx, ctx.scalarLike(1, x)]);
    local = ctx.op('Mul', [cx, ctx.op('Pow', [x, cm1])]);
  }
  return [ctx.sumTo(ctx.op('Mul', [g, local]), x, y), null];
};

const one = (ctx: VjpContext, like: string) => ctx.scalarLike(1, like);

const rules: Record<string, VjpRule> = {
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Sum: sum,
  Mean: mean,
  Pow: pow,
  Neg: (ctx) => [ctx.op('Neg', [ctx.gradOut(0)!])],
  Identity: (ctx) => [ctx.gradOut(0)!],
  // Sqrt: g * 0.5 / Y
  Sqrt: unary((ctx, x, y) => ctx.op('Div', [ctx.scalarLike(0.5, y), y])),
  // Reciprocal: -g * Y²
  Reciprocal: unary((ctx, x, y) => ctx.op('Neg', [ctx.op('Mul', [y, y])])),
  Exp: unary((_ctx, _x, y) => y),
  Log: unary((ctx, x) => ctx.op('Reciprocal', [x])),
  Tanh: unary((ctx, _x, y) => ctx.op('Sub', [one(ctx, y), ctx.op('Mul', [y, y])])),
  Sigmoid: unary((ctx, _x, y) => ctx.op('Mul', [y, ctx.op('Sub', [one(ctx, y), y])])),
  Relu: (ctx) => {
    const g = ctx.gradOut(0)!;
    const x = ctx.input(0);
    return [ctx.op('Where', [ctx.op('Greater', [x, ctx.scalarLike(0, x)]), g, ctx.scalarLike(0, x)])];
  },
  LeakyRelu: (ctx) => {
    const g = ctx.gradOut(0)!;
    const x = ctx.input(0);
    const alpha = ctx.attrFloat('alpha', 0.01);
    return [ctx.op('Where', [ctx.op('Greater', [x, ctx.scalarLike(0, x)]), g, ctx.op('Mul', [g, ctx.scalarLike(alpha, x)])])];
  },
  // Erf: 2/√π · exp(-x²)
  Erf: unary((ctx, x) =>
    ctx.op('Mul', [ctx.scalarLike(2 / Math.sqrt(Math.PI), x), ctx.op('Exp', [ctx.op('Neg', [ctx.op('Mul', [x, x])])])]),
  ),
  Sin: unary((ctx, x) => ctx.op('Cos', [x])),
  Cos: unary((ctx, x) => ctx.op('Neg', [ctx.op('Sin', [x])])),
  Abs: unary((ctx, x) => ctx.op('Sign', [x])),
  Softplus: unary((ctx, x) => ctx.op('Sigmoid', [x])),
  Gelu: unary((ctx, x) => geluDerivative(ctx, x, ctx.attrString('approximate', 'none'))),
  Clip: (ctx) => {
    const g = ctx.gradOut(0)!;
    const x = ctx.input(0);
    let inside: string | null = null;
    if (ctx.hasInput(1)) inside = ctx.op('GreaterOrEqual', [x, ctx.input(1)]);
    if (ctx.hasInput(2)) {
      const le = ctx.op('LessOrEqual', [x, ctx.input(2)]);
      inside = inside ? ctx.op('And', [inside, le]) : le;
    }
    return [inside ? ctx.op('Where', [inside, g, ctx.scalarLike(0, x)]) : g, null, null];
  },
  // Max/Min: the winner gets the gradient; ties split equally (as ORT and tinygrad do).
  Max: minMax,
  Min: minMax,
  Where: (ctx) => {
    const g = ctx.gradOut(0)!;
    const cond = ctx.input(0);
    const y = ctx.output(0);
    const zero = ctx.scalarLike(0, y);
    return [
      null,
      ctx.needsGrad(1) ? ctx.sumTo(ctx.op('Where', [cond, g, zero]), ctx.input(1), y) : null,
      ctx.needsGrad(2) ? ctx.sumTo(ctx.op('Where', [cond, zero, g]), ctx.input(2), y) : null,
    ];
  },
  Cast: (ctx) => [ctx.op('Cast', [ctx.gradOut(0)!], { to: ctx.dtypeCode(ctx.input(0)) })],
  // Inference-mode Dropout is the identity; training mode scales by the mask.
  Dropout: (ctx) => {
    const g = ctx.gradOut(0)!;
    const mask = ctx.node.outputs[1];
    const training = ctx.hasInput(2) ? ctx.constValues(2) : [0];
    if (!mask || !training || training[0] === 0) return [g, null, null];
    const ratio = ctx.hasInput(1) ? (ctx.constValues(1)?.[0] ?? 0.5) : 0.5;
    const x = ctx.input(0);
    const kept = ctx.op('Cast', [mask], { to: ctx.dtypeCode(x) });
    return [ctx.op('Mul', [ctx.op('Mul', [g, kept]), ctx.scalarLike(1 / (1 - ratio), x)]), null, null];
  },
};

function minMax(ctx: VjpContext): Array<string | null> {
  const g = ctx.gradOut(0)!;
  const y = ctx.output(0);
  const masks = ctx.node.inputs.map((x) => ctx.op('Cast', [ctx.op('Equal', [x, y])], { to: ctx.dtypeCode(y) }));
  const count = masks.length === 1 ? masks[0] : ctx.op('Sum', masks);
  const share = ctx.op('Div', [g, count]);
  return ctx.node.inputs.map((x, i) => (ctx.needsGrad(i) ? ctx.sumTo(ctx.op('Mul', [share, masks[i]]), x, y) : null));
}

/** d/dx GELU for the erf form and the tanh approximation (opset 20 Gelu, and GPT-2's gelu_new pattern). */
function geluDerivative(ctx: VjpContext, x: string, approximate: string): string {
  const half = ctx.scalarLike(0.5, x);
  const c1 = ctx.scalarLike(1, x);
  if (approximate === 'tanh') {
    const k = Math.sqrt(2 / Math.PI);
    const x2 = ctx.op('Mul', [x, x]);
    const inner = ctx.op('Mul', [
      ctx.scalarLike(k, x),
      ctx.op('Add', [x, ctx.op('Mul', [ctx.scalarLike(0.044715, x), ctx.op('Mul', [x2, x])])]),
    ]);
    const t = ctx.op('Tanh', [inner]);
    const dInner = ctx.op('Mul', [
      ctx.scalarLike(k, x),
      ctx.op('Add', [c1, ctx.op('Mul', [ctx.scalarLike(3 * 0.044715, x), x2])]),
    ]);
    const sech2 = ctx.op('Sub', [c1, ctx.op('Mul', [t, t])]);
    return ctx.op('Add', [
      ctx.op('Mul', [half, ctx.op('Add', [c1, t])]),
      ctx.op('Mul', [ctx.op('Mul', [half, x]), ctx.op('Mul', [sech2, dInner])]),
    ]);
  }
  // Φ(x) + x φ(x) = 0.5(1 + erf(x/√2)) + x exp(-x²/2)/√(2π)
  const cdf = ctx.op('Mul', [half, ctx.op('Add', [c1, ctx.op('Erf', [ctx.op('Mul', [x, ctx.scalarLike(Math.SQRT1_2, x)])])])]);
  const pdf = ctx.op('Mul', [
    ctx.scalarLike(1 / Math.sqrt(2 * Math.PI), x),
    ctx.op('Exp', [ctx.op('Mul', [ctx.scalarLike(-0.5, x), ctx.op('Mul', [x, x])])]),
  ]);
  return ctx.op('Add', [cdf, ctx.op('Mul', [x, pdf])]);
}

export const elementwiseRules = rules;
