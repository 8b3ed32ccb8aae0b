// VJP rules for reductions, softmax and normalisation.

import { dtypeFromCode } from '../../onnx/ir.js';
import type { VjpContext, VjpRule } from '../context.js';

/** Axes of a reduction (attribute before opset 18 / 13 for ReduceSum, input after), normalised; null = dynamic. */
function reduceAxes(ctx: VjpContext, rank: number): number[] | null {
  let axes: number[] | null = ctx.attrInts('axes');
  if (!axes && ctx.hasInput(1)) {
    axes = ctx.constValues(1);
    if (!axes) return null;
  }
  if (!axes || axes.length === 0) {
    if (ctx.attrInt('noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => ctx.axis(a, rank)).sort((p, q) => p - q);
}

/** Brings the cotangent of a reduction back to the input's rank (keepdims form), before broadcasting. */
function unreduce(ctx: VjpContext, g: string): string {
  const x = ctx.input(0);
  const rank = ctx.rank(x);
  const keep = ctx.attrInt('keepdims', 1) === 1;
  if (keep) return g;
  const axes = reduceAxes(ctx, rank);
  if (axes === null) return ctx.op('Unsqueeze', [g, ctx.input(1)]);
  if (axes.length === 0) return g;
  return ctx.op('Unsqueeze', [g, ctx.b.ints(axes)]);
}

function expandToInput(ctx: VjpContext, t: string): string {
  return ctx.op('Expand', [t, ctx.op('Shape', [ctx.input(0)])]);
}

/** Number of input elements folded into each output element, as a scalar of the input's dtype. */
function reductionCount(ctx: VjpContext): string {
  const x = ctx.input(0);
  const xs = ctx.shape(x);
  const ys = ctx.shape(ctx.output(0));
  // Static sizes: a constant instead of Size/Cast/Div at run time.
  if (xs && ys && xs.every((d) => typeof d === 'number') && ys.every((d) => typeof d === 'number')) {
    const prod = (s: Array<number | string | null>) => s.reduce<number>((n, d) => n * (d as number), 1);
    return ctx.scalarLike(prod(xs) / prod(ys), x);
  }
  const to = ctx.dtypeCode(x);
  return ctx.op('Div', [
    ctx.op('Cast', [ctx.op('Size', [x])], { to }),
    ctx.op('Cast', [ctx.op('Size', [ctx.output(0)])], { to }),
  ]);
}

const reduceSum: VjpRule = (ctx) => [expandToInput(ctx, unreduce(ctx, ctx.gradOut(0)!)), null];

const reduceMean: VjpRule = (ctx) => {
  const g = unreduce(ctx, ctx.gradOut(0)!);
  return [expandToInput(ctx, ctx.op('Div', [g, reductionCount(ctx)])), null];
};

// d/dx Σx² = 2x
const reduceSumSquare: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const g = expandToInput(ctx, unreduce(ctx, ctx.gradOut(0)!));
  return [ctx.op('Mul', [g, ctx.op('Mul', [x, ctx.scalarLike(2, x)])]), null];
};

// d/dx ‖x‖ = x / ‖x‖ (0 where the norm is 0)
const reduceL2: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const y = ctx.output(0);
  const zero = ctx.scalarLike(0, y);
  const safe = ctx.op('Where', [ctx.op('Equal', [y, zero]), zero, ctx.op('Div', [ctx.gradOut(0)!, y])]);
  return [ctx.op('Mul', [x, expandToInput(ctx, unreduce(ctx, safe))]), null];
};

// d/dx Σ|x| = sign(x) (0 at 0, as PyTorch's norm(p=1)).
const reduceL1: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const g = expandToInput(ctx, unreduce(ctx, ctx.gradOut(0)!));
  return [ctx.op('Mul', [g, ctx.op('Sign', [x])]), null];
};

// y = log Σx: dx = g / Σx = g · exp(−y).
const reduceLogSum: VjpRule = (ctx) => {
  const y = unreduce(ctx, ctx.output(0));
  const g = unreduce(ctx, ctx.gradOut(0)!);
  return [expandToInput(ctx, ctx.op('Mul', [g, ctx.op('Exp', [ctx.op('Neg', [y])])])), null];
};

const reduceLogSumExp: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const y = unreduce(ctx, ctx.output(0));
  const g = unreduce(ctx, ctx.gradOut(0)!);
  return [ctx.op('Mul', [ctx.op('Exp', [ctx.op('Sub', [x, y])]), g]), null];
};

// Max/Min reductions: the gradient is split equally among ties.
const reduceExtremum: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const y = unreduce(ctx, ctx.output(0));
  const g = unreduce(ctx, ctx.gradOut(0)!);
  const mask = ctx.op('Cast', [ctx.op('Equal', [x, y])], { to: ctx.dtypeCode(x) });
  const rank = ctx.rank(x);
  const axes = reduceAxes(ctx, rank);
  const count =
    axes === null
      ? ctx.op('ReduceSum', [mask, ctx.input(1)], { keepdims: 1 })
      : ctx.b.reduceSum(mask, axes, true, axes.length === 0);
  return [ctx.op('Mul', [mask, ctx.op('Div', [g, count])]), null];
};

const softmaxAxis = (ctx: VjpContext) => ctx.axis(ctx.attrInt('axis', -1), ctx.rank(ctx.input(0)));

const softmax: VjpRule = (ctx) => {
  if (ctx.opset < 13) throw ctx.error('Softmax before opset 13 (2-D coercion) is not supported for training');
  const g = ctx.gradOut(0)!;
  const y = ctx.output(0);
  const dot = ctx.b.reduceSum(ctx.op('Mul', [g, y]), [softmaxAxis(ctx)], true);
  return [ctx.op('Mul', [y, ctx.op('Sub', [g, dot])])];
};

const logSoftmax: VjpRule = (ctx) => {
  if (ctx.opset < 13) throw ctx.error('LogSoftmax before opset 13 (2-D coercion) is not supported for training');
  const g = ctx.gradOut(0)!;
  const y = ctx.output(0);
  const total = ctx.b.reduceSum(g, [softmaxAxis(ctx)], true);
  return [ctx.op('Sub', [g, ctx.op('Mul', [ctx.op('Exp', [y]), total])])];
};

// LayerNormalization-17: xh = (X − Mean)·Inv; dX = Inv·(gs − mean(gs) − xh·mean(gs·xh)), gs = g·Scale.
const layerNorm: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const scale = ctx.input(1);
  const rank = ctx.rank(x);
  const axis = ctx.axis(ctx.attrInt('axis', -1), rank);
  // Mean and InvStdDev have the stash type (float32 by default): bring them to X's dtype (fp16 models).
  const xShape = ctx.shape(x);
  const statShape = xShape ? xShape.map((d, i) => (i < axis ? d : 1)) : null;
  const stashCode = ctx.attrInt('stash_type', 1);
  const asX = (t: string) => (stashCode === ctx.dtypeCode(x) ? t : ctx.op('Cast', [t], { to: ctx.dtypeCode(x) }));
  const stash = dtypeFromCode(stashCode, `${ctx.node.opType} node '${ctx.node.name}' stash_type`);
  const mean = asX(ctx.ensureOutput(1, 'mean', stash, statShape));
  const inv = asX(ctx.ensureOutput(2, 'inv_std', stash, statShape));
  const normAxes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const outerAxes = Array.from({ length: axis }, (_, i) => i);
  const xh = ctx.op('Mul', [ctx.op('Sub', [x, mean]), inv]);
  const res: Array<string | null> = [null, null, null];
  if (ctx.needsGrad(0)) {
    const gs = ctx.op('Mul', [g, scale]);
    const m1 = ctx.b.reduceMean(gs, normAxes, true, ctx.opset);
    const m2 = ctx.b.reduceMean(ctx.op('Mul', [gs, xh]), normAxes, true, ctx.opset);
    res[0] = ctx.op('Mul', [inv, ctx.op('Sub', [ctx.op('Sub', [gs, m1]), ctx.op('Mul', [xh, m2])])]);
  }
  const sumOuter = (t: string) => (outerAxes.length ? ctx.b.reduceSum(t, outerAxes, false) : t);
  if (ctx.needsGrad(1)) res[1] = sumOuter(ctx.op('Mul', [g, xh]));
  if (ctx.hasInput(2) && ctx.needsGrad(2)) res[2] = sumOuter(g);
  return res;
};

export const reduceRules: Record<string, VjpRule> = {
  ReduceSum: reduceSum,
  ReduceMean: reduceMean,
  ReduceSumSquare: reduceSumSquare,
  ReduceL2: reduceL2,
  ReduceL1: reduceL1,
  ReduceLogSum: reduceLogSum,
  ReduceLogSumExp: reduceLogSumExp,
  ReduceMax: reduceExtremum,
  ReduceMin: reduceExtremum,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  LayerNormalization: layerNorm,
};
