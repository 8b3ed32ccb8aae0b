// VJP rules for convolutions, pooling, resizing, padding and the channel normalisations.
//
// The linear spatial ops are differentiated through their adjoints, built from standard ops only:
//   Conv ↔ ConvTranspose (and the weight gradient is a Conv of the input with the cotangent, strides and dilations
//   swapped), AveragePool ↔ a ones-kernel ConvTranspose, Resize ↔ per-axis interpolation matrices obtained by resizing
//   an identity matrix with the forward op's own attributes (so every mode and coordinate convention matches).
// Sizes stay symbolic: crops and pads are computed from Shape() at run time wherever the input size matters.

import type { AttrsInput } from '../../onnx/builder.js';
import { tensorFromNumbers } from '../../onnx/ir.js';
import type { VjpContext, VjpRule } from '../context.js';
import { iota, scatterBack } from './shape.js';

const INT64_MAX = 2 ** 62;

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
const product = (xs: number[]) => xs.reduce((a, b) => a * b, 1);

/** Padding of the spatial axes: static numbers, or int64 tensors [n] computed from the input's size. */
interface SpatialPads {
  begin: number[] | string;
  end: number[] | string;
}

/** The sliding-window geometry shared by Conv, ConvTranspose and the pools. */
interface Window {
  n: number;
  kernel: number[];
  strides: number[];
  dilations: number[];
}

function windowOf(ctx: VjpContext, kernel: number[]): Window {
  const n = kernel.length;
  return {
    n,
    kernel,
    strides: ctx.attrInts('strides') ?? Array<number>(n).fill(1),
    dilations: ctx.attrInts('dilations') ?? Array<number>(n).fill(1),
  };
}

/** Kernel size from `kernel_shape` or the weight's static shape [M, C/G, k...]. */
function convKernel(ctx: VjpContext, w: string): number[] {
  const attr = ctx.attrInts('kernel_shape');
  if (attr) return attr;
  const s = ctx.shape(w);
  const k = s?.slice(2);
  if (!k || k.some((d) => typeof d !== 'number')) {
    throw ctx.error(`the kernel size is unknown: give weight '${w}' a static shape or set kernel_shape`);
  }
  return k as number[];
}

/** A static dim of a value, or a clear error (used where a rule needs a concrete channel count). */
function staticDim(ctx: VjpContext, x: string, axis: number, why: string): number {
  const d = ctx.shape(x)?.[axis];
  if (typeof d !== 'number') throw ctx.error(`dim ${axis} of '${x}' must be static ${why}`);
  return d;
}

/** Shape(x)[2:] as an int64 tensor. */
function spatialShape(ctx: VjpContext, x: string): string {
  return ctx.op('Slice', [ctx.op('Shape', [x]), ctx.b.ints([2]), ctx.b.ints([INT64_MAX])]);
}

function asTensor(ctx: VjpContext, v: number[] | string): string {
  return typeof v === 'string' ? v : ctx.b.ints(v);
}

function isZero(v: number[] | string): boolean {
  return typeof v !== 'string' && v.every((p) => p === 0);
}

/** Forward padding of a Conv or pool: explicit pads, VALID, or SAME_UPPER/LOWER computed from the input size. */
function forwardPads(ctx: VjpContext, x: string, win: Window): SpatialPads {
  const n = win.n;
  const autoPad = ctx.attrString('auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') {
    const p = ctx.attrInts('pads') ?? Array<number>(2 * n).fill(0);
    return { begin: p.slice(0, n), end: p.slice(n) };
  }
  if (autoPad === 'VALID') return { begin: Array<number>(n).fill(0), end: Array<number>(n).fill(0) };
  if (autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER') throw ctx.error(`unknown auto_pad '${autoPad}'`);
  const upper = autoPad === 'SAME_UPPER';
  const extent = win.kernel.map((k, i) => (k - 1) * win.dilations[i] + 1);
  const xs = ctx.shape(x)?.slice(2);
  if (xs && xs.every((d) => typeof d === 'number')) {
    const begin: number[] = [];
    const end: number[] = [];
    (xs as number[]).forEach((d, i) => {
      const s = win.strides[i];
      const total = Math.max(0, (Math.ceil(d / s) - 1) * s + extent[i] - d);
      const b = upper ? Math.floor(total / 2) : total - Math.floor(total / 2);
      begin.push(b);
      end.push(total - b);
    });
    return { begin, end };
  }
  // Symbolic sizes: the same arithmetic with int64 ops.
  const size = spatialShape(ctx, x);
  const s = ctx.b.ints(win.strides);
  const out = ctx.op('Div', [ctx.op('Add', [size, ctx.b.ints(win.strides.map((v) => v - 1))]), s]);
  const needed = ctx.op('Sub', [ctx.op('Add', [ctx.op('Mul', [ctx.op('Sub', [out, ctx.b.ints(Array(n).fill(1))]), s]), ctx.b.ints(extent)]), size]);
  const total = ctx.op('Max', [needed, ctx.b.ints(Array(n).fill(0))]);
  const half = ctx.op('Div', [total, ctx.b.ints(Array(n).fill(2))]);
  const begin = upper ? half : ctx.op('Sub', [total, half]);
  return { begin, end: ctx.op('Sub', [total, begin]) };
}

/** Pads (or, for negative amounts, crops) the spatial axes of x with zeros. */
function padSpatial(ctx: VjpContext, x: string, pads: SpatialPads): string {
  if (isZero(pads.begin) && isZero(pads.end)) return x;
  let padsTensor: string;
  if (typeof pads.begin !== 'string' && typeof pads.end !== 'string') {
    padsTensor = ctx.b.ints([0, 0, ...pads.begin, 0, 0, ...pads.end]);
  } else {
    const two = ctx.b.ints([0, 0]);
    padsTensor = ctx.op('Concat', [two, asTensor(ctx, pads.begin), two, asTensor(ctx, pads.end)], { axis: 0 });
  }
  return ctx.op('Pad', [x, padsTensor]);
}

/**
 * The adjoint of a strided window sum over a padded input: scatters `g` back with ConvTranspose (no padding, so the
 * result covers the whole padded input and at most stride−1 more), then crops X's extent starting at the front pad.
 */
function windowAdjoint(ctx: VjpContext, g: string, w: string, x: string, win: Window, pads: SpatialPads, group: number): string {
  const full = ctx.op('ConvTranspose', [g, w], {
    kernel_shape: win.kernel,
    strides: win.strides,
    dilations: win.dilations,
    group,
    output_padding: win.strides.map((s) => s - 1),
  });
  const begin = asTensor(ctx, pads.begin);
  const end = ctx.op('Add', [begin, spatialShape(ctx, x)]);
  return ctx.op('Slice', [full, begin, end, ctx.b.ints(range(2, win.n + 2))]);
}

/**
 * dW [M, C/G, k...] of a convolution with (already padded) input `xp` [N, C, ...] and output cotangent `gy`
 * [N, M, ...]: a correlation of the two over the batch, i.e. a Conv with N as the channel axis, strides and
 * dilations swapped, cropped to the kernel size. Groups are folded into the Conv's own `group`.
 */
function convWeightGrad(ctx: VjpContext, xp: string, gy: string, win: Window, group: number, perGroup: number): string {
  const n = win.n;
  const swap01 = [1, 0, ...range(2, n + 2)];
  let xt: string;
  if (group === 1) {
    xt = ctx.op('Transpose', [xp], { perm: swap01 });
  } else {
    // [N, G·Cg, ...] → [Cg, G·N, ...] so that Conv channel group j holds the batch of input group j.
    const spatial = spatialShape(ctx, xp);
    const split = ctx.op('Reshape', [xp, ctx.op('Concat', [ctx.b.ints([0, group, perGroup]), spatial], { axis: 0 })]);
    const moved = ctx.op('Transpose', [split], { perm: [2, 1, 0, ...range(3, n + 3)] });
    xt = ctx.op('Reshape', [moved, ctx.op('Concat', [ctx.b.ints([perGroup, -1]), spatial], { axis: 0 })]);
  }
  const gt = ctx.op('Transpose', [gy], { perm: swap01 });
  const corr = ctx.op('Conv', [xt, gt], { strides: win.dilations, dilations: win.strides, group });
  const cropped = ctx.op('Slice', [corr, ctx.b.ints(Array(n).fill(0)), ctx.b.ints(win.kernel), ctx.b.ints(range(2, n + 2))]);
  return ctx.op('Transpose', [cropped], { perm: swap01 });
}

function channelSum(ctx: VjpContext, g: string, rank: number): string {
  return ctx.b.reduceSum(g, [0, ...range(2, rank)], false);
}

const conv: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const w = ctx.input(1);
  const win = windowOf(ctx, convKernel(ctx, w));
  const group = ctx.attrInt('group', 1);
  const pads = forwardPads(ctx, x, win);
  const res: Array<string | null> = [null, null, null];
  if (ctx.needsGrad(0)) res[0] = windowAdjoint(ctx, g, w, x, win, pads, group);
  if (ctx.needsGrad(1)) {
    const perGroup = group === 1 ? 0 : staticDim(ctx, w, 1, 'for a grouped Conv weight gradient');
    res[1] = convWeightGrad(ctx, padSpatial(ctx, x, pads), g, win, group, perGroup);
  }
  if (ctx.hasInput(2) && ctx.needsGrad(2)) res[2] = channelSum(ctx, g, win.n + 2);
  return res;
};

/**
 * Where ConvTranspose's output sits in its uncropped result `full` (length s(X−1) + output_padding + (k−1)d + 1):
 * Y = full[begin : full − end]. A negative end means zeros appended (output_shape larger than full).
 * For auto_pad/output_shape the split of the total follows onnxruntime: SAME_UPPER puts the odd element at the front
 * less often (begin = ⌊total/2⌋), every other mode puts it there (begin = total − ⌊total/2⌋).
 */
function transposePads(ctx: VjpContext, x: string, win: Window, outPad: number[]): { begin: number[]; end: number[] } {
  const n = win.n;
  const autoPad = ctx.attrString('auto_pad', 'NOTSET');
  const outputShape = ctx.attrInts('output_shape');
  if (!outputShape && (autoPad === 'NOTSET' || autoPad === 'VALID')) {
    const p = autoPad === 'VALID' ? Array<number>(2 * n).fill(0) : (ctx.attrInts('pads') ?? Array<number>(2 * n).fill(0));
    return { begin: p.slice(0, n), end: p.slice(n) };
  }
  const upper = autoPad === 'SAME_UPPER';
  const begin: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = win.strides[i];
    const extent = (win.kernel[i] - 1) * win.dilations[i] + 1;
    let total: number;
    if (outputShape) {
      const d = staticDim(ctx, x, i + 2, 'when ConvTranspose has output_shape');
      total = s * (d - 1) + outPad[i] + extent - outputShape[outputShape.length - n + i];
    } else {
      total = outPad[i] + extent - s; // SAME: Y = X·s
    }
    const clamped = Math.max(0, total);
    const b = upper ? Math.floor(clamped / 2) : clamped - Math.floor(clamped / 2);
    begin.push(b);
    end.push(total - b);
  }
  return { begin, end };
}

// ConvTranspose is the adjoint of Conv with the same weight: dX = Conv(g), dW = the Conv weight gradient with the
// roles of input and cotangent exchanged.
const convTranspose: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const w = ctx.input(1);
  const win = windowOf(ctx, convKernel(ctx, w));
  const group = ctx.attrInt('group', 1);
  const outPad = ctx.attrInts('output_padding') ?? Array<number>(win.n).fill(0);
  const gFull = padSpatial(ctx, g, transposePads(ctx, x, win, outPad));
  const res: Array<string | null> = [null, null, null];
  if (ctx.needsGrad(0)) {
    let dx = ctx.op('Conv', [gFull, w], { kernel_shape: win.kernel, strides: win.strides, dilations: win.dilations, group });
    // output_padding ≥ stride leaves whole extra rows in `full`: drop the windows they add.
    if (outPad.some((p, i) => p >= win.strides[i])) {
      dx = ctx.op('Slice', [dx, ctx.b.ints(Array(win.n).fill(0)), spatialShape(ctx, x), ctx.b.ints(range(2, win.n + 2))]);
    }
    res[0] = dx;
  }
  if (ctx.needsGrad(1)) {
    const perGroup = group === 1 ? 0 : staticDim(ctx, w, 1, 'for a grouped ConvTranspose weight gradient');
    res[1] = convWeightGrad(ctx, gFull, x, win, group, perGroup);
  }
  if (ctx.hasInput(2) && ctx.needsGrad(2)) res[2] = channelSum(ctx, g, win.n + 2);
  return res;
};

// MaxPool routes each output's cotangent to the element it picked: the Indices output (flat positions in X) says which.
const maxPool: VjpRule = (ctx) => {
  if (ctx.attrInt('storage_order', 0) !== 0) {
    throw ctx.error('storage_order=1 (column-major indices) is not supported for training');
  }
  const indices = ctx.ensureOutput(1, 'indices', 'int64', ctx.shape(ctx.output(0)));
  return [scatterBack(ctx, indices, ctx.gradOut(0)!)];
};

/** Per-window element counts [1, 1, ...Y] for AveragePool's divisor (count_include_pad=0 or ceil_mode windows). */
function windowCounts(ctx: VjpContext, x: string, g: string, win: Window, pads: SpatialPads, ones: string, includePad: boolean, ceil: boolean): string {
  const one = { value: tensorFromNumbers(ctx.dtype(x), [1], [1]) };
  const extra = ceil ? win.strides.map((s) => s - 1) : Array<number>(win.n).fill(0);
  const unitShape = (size: string) => ctx.op('Concat', [ctx.b.ints([1, 1]), size], { axis: 0 });
  let region: string;
  if (includePad) {
    // Padding counts, anything a ceil-mode window reaches beyond it does not.
    const size = ctx.op('Add', [ctx.op('Add', [spatialShape(ctx, x), asTensor(ctx, pads.begin)]), asTensor(ctx, pads.end)]);
    region = padSpatial(ctx, ctx.op('ConstantOfShape', [unitShape(size)], one), { begin: Array(win.n).fill(0), end: extra });
  } else {
    const end = typeof pads.end === 'string' ? ctx.op('Add', [pads.end, ctx.b.ints(extra)]) : pads.end.map((p, i) => p + extra[i]);
    region = padSpatial(ctx, ctx.op('ConstantOfShape', [unitShape(spatialShape(ctx, x))], one), { begin: pads.begin, end });
  }
  const counts = ctx.op('Conv', [region, ones], { kernel_shape: win.kernel, strides: win.strides, dilations: win.dilations });
  if (!ceil) return counts;
  return ctx.op('Slice', [counts, ctx.b.ints(Array(win.n).fill(0)), spatialShape(ctx, g), ctx.b.ints(range(2, win.n + 2))]);
}

const averagePool: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const kernel = ctx.attrInts('kernel_shape');
  if (!kernel) throw ctx.error('kernel_shape is required');
  const win = windowOf(ctx, kernel);
  const pads = forwardPads(ctx, x, win);
  const ceil = ctx.attrInt('ceil_mode', 0) === 1;
  const includePad = ctx.attrInt('count_include_pad', 0) === 1;
  const dtype = ctx.dtype(x);
  // One channel at a time ([N, C, ...] → [N·C, 1, ...]) so a single ones-kernel serves any channel count.
  const unit = (t: string) => ctx.op('Reshape', [t, ctx.op('Concat', [ctx.b.ints([-1, 1]), spatialShape(ctx, t)], { axis: 0 })]);
  const ones = ctx.b.constant(dtype, [1, 1, ...kernel], Array(product(kernel)).fill(1), 'pool_ones');
  const constantDivisor = !ceil && (includePad || (isZero(pads.begin) && isZero(pads.end)));
  const divisor = constantDivisor
    ? ctx.scalarLike(product(kernel), x)
    : windowCounts(ctx, x, g, win, pads, ones, includePad, ceil);
  const scaled = ctx.op('Div', [unit(g), divisor]);
  const dx = windowAdjoint(ctx, scaled, ones, unit(x), win, pads, 1);
  return [ctx.op('Reshape', [dx, ctx.op('Shape', [x])])];
};

const globalAveragePool: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const to = ctx.dtypeCode(x);
  const count = ctx.op('Div', [ctx.op('Cast', [ctx.op('Size', [x])], { to }), ctx.op('Cast', [ctx.op('Size', [ctx.output(0)])], { to })]);
  return [ctx.op('Expand', [ctx.op('Div', [ctx.gradOut(0)!, count]), ctx.op('Shape', [x])])];
};

// Ties share the cotangent equally, as for ReduceMax.
const globalMaxPool: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const mask = ctx.op('Cast', [ctx.op('Equal', [x, ctx.output(0)])], { to: ctx.dtypeCode(x) });
  const count = ctx.b.reduceSum(mask, range(2, ctx.rank(x)), true);
  return [ctx.op('Mul', [mask, ctx.op('Div', [ctx.gradOut(0)!, count])])];
};

/**
 * Resize is separable: along each resized axis a, Y = R_a·X with R_a of shape [out, in]. R_a is Resize itself applied
 * to an identity matrix [in, in] resized along its first axis only, with the forward node's attributes, so nearest
 * (any nearest_mode), linear, cubic, antialias and every coordinate transformation are reproduced exactly.
 * dX = g contracted with R_a along each resized axis.
 */
const resize: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const rank = ctx.rank(x);
  const ctm = ctx.attrString('coordinate_transformation_mode', 'half_pixel');
  if (ctm === 'tf_crop_and_resize') throw ctx.error("coordinate_transformation_mode 'tf_crop_and_resize' is not supported for training");
  if (ctx.attrString('keep_aspect_ratio_policy', 'stretch') !== 'stretch') {
    throw ctx.error("keep_aspect_ratio_policy other than 'stretch' is not supported for training; give scales instead");
  }
  const axes = (ctx.attrInts('axes') ?? range(0, rank)).map((a) => ctx.axis(a, rank));
  const bySizes = ctx.hasInput(3);
  if (!bySizes && !ctx.hasInput(2)) throw ctx.error('neither scales nor sizes is given');
  const known = ctx.constValues(bySizes ? 3 : 2);
  const xShape = ctx.shape(x);
  const attrs: AttrsInput = {};
  for (const [name, a] of Object.entries(ctx.node.attrs)) {
    if (name !== 'axes' && name !== 'keep_aspect_ratio_policy') attrs[name] = a;
  }
  const zero = { value: tensorFromNumbers(ctx.dtype(x), [1], [0]) };
  let cur = ctx.gradOut(0)!;
  axes.forEach((a, p) => {
    // Axes the forward op leaves alone need nothing.
    if (known && !bySizes && known[p] === 1) return;
    if (known && bySizes && xShape && xShape[a] === known[p]) return;
    const n = ctx.op('Slice', [ctx.op('Shape', [x]), ctx.b.ints([a]), ctx.b.ints([a + 1])]);
    const eye = ctx.op('EyeLike', [ctx.op('ConstantOfShape', [ctx.op('Concat', [n, n], { axis: 0 })], zero)]);
    const pick = ctx.op('Slice', [ctx.input(bySizes ? 3 : 2), ctx.b.ints([p]), ctx.b.ints([p + 1])]);
    const matrix = bySizes
      ? ctx.op('Resize', [eye, '', '', ctx.op('Concat', [pick, n], { axis: 0 })], attrs)
      : ctx.op('Resize', [eye, '', ctx.op('Concat', [pick, ctx.b.constant('float32', [1], [1])], { axis: 0 })], attrs);
    // Contract g's axis a (length out) with R's rows: move a last, MatMul by R [out, in], move back.
    const perm = range(0, rank);
    [perm[a], perm[rank - 1]] = [perm[rank - 1], perm[a]];
    const moved = a === rank - 1 ? cur : ctx.op('Transpose', [cur], { perm });
    const product = ctx.op('MatMul', [moved, matrix]);
    cur = a === rank - 1 ? product : ctx.op('Transpose', [product], { perm });
  });
  return [cur, null, null, null];
};

// Constant padding: the adjoint crops what was added (and zero-fills what negative pads removed): Pad by −pads.
// Reflect/edge/wrap: pad X's flat positions the same way and scatter-add the cotangent back to them.
const pad: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const mode = ctx.attrString('mode', 'constant');
  const pads = ctx.input(1);
  const axes = ctx.hasInput(3) ? [ctx.input(3)] : [];
  if (mode === 'constant') {
    return [ctx.op('Pad', [g, ctx.op('Neg', [pads]), ...(axes.length ? ['', ...axes] : [])]), null, null, null];
  }
  const positions = ctx.op('Pad', [iota(ctx, ctx.input(0)), pads, ...(axes.length ? ['', ...axes] : [])], { mode });
  return [scatterBack(ctx, positions, g), null, null, null];
};

/** Normalisation statistics over `axes` (keepdims): xh = (x − mean)·inv, inv = 1/√(var + eps). */
function normStats(ctx: VjpContext, x: string, axes: number[], eps: number): { xh: string; inv: string } {
  const mean = ctx.b.reduceMean(x, axes, true, ctx.opset);
  const centered = ctx.op('Sub', [x, mean]);
  const variance = ctx.b.reduceMean(ctx.op('Mul', [centered, centered]), axes, true, ctx.opset);
  const inv = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalarLike(eps, x)])])]);
  return { xh: ctx.op('Mul', [centered, inv]), inv };
}

/** dX of xh·scale over `axes` given gs = g·scale: inv·(gs − mean(gs) − xh·mean(gs·xh)). */
function normInputGrad(ctx: VjpContext, gs: string, xh: string, inv: string, axes: number[]): string {
  const m1 = ctx.b.reduceMean(gs, axes, true, ctx.opset);
  const m2 = ctx.b.reduceMean(ctx.op('Mul', [gs, xh]), axes, true, ctx.opset);
  return ctx.op('Mul', [inv, ctx.op('Sub', [ctx.op('Sub', [gs, m1]), ctx.op('Mul', [xh, m2])])]);
}

/** A per-channel vector [C] as [C, 1, ...] to broadcast against [N, C, ...]. */
function perChannel(ctx: VjpContext, v: string, rank: number): string {
  return rank > 2 ? ctx.op('Unsqueeze', [v, ctx.b.ints(range(1, rank - 1))]) : v;
}

const instanceNorm: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const rank = ctx.rank(x);
  const spatial = range(2, rank);
  const { xh, inv } = normStats(ctx, x, spatial, ctx.attrFloat('epsilon', 1e-5));
  const res: Array<string | null> = [null, null, null];
  if (ctx.needsGrad(0)) res[0] = normInputGrad(ctx, ctx.op('Mul', [g, perChannel(ctx, ctx.input(1), rank)]), xh, inv, spatial);
  if (ctx.needsGrad(1)) res[1] = channelSum(ctx, ctx.op('Mul', [g, xh]), rank);
  if (ctx.needsGrad(2)) res[2] = channelSum(ctx, g, rank);
  return res;
};

// GroupNormalization: statistics over [N, G, C/G·spatial]. Opset 18 has per-group scale/bias [G]; opset 21 per-channel [C].
const groupNorm: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const rank = ctx.rank(x);
  const groups = ctx.attrInt('num_groups', 0);
  if (groups <= 0) throw ctx.error('num_groups must be a positive int');
  const perChannelAffine = ctx.opset >= 21;
  const grouped = (t: string) => ctx.declare(ctx.op('Reshape', [t, ctx.b.ints([0, groups, -1])]), ctx.dtype(x), null);
  const { xh, inv } = normStats(ctx, grouped(x), [2], ctx.attrFloat('epsilon', 1e-5));
  const scale = ctx.input(1);
  const res: Array<string | null> = [null, null, null];
  if (ctx.needsGrad(0)) {
    const gs = perChannelAffine
      ? grouped(ctx.op('Mul', [g, perChannel(ctx, scale, rank)]))
      : ctx.op('Mul', [grouped(g), ctx.op('Unsqueeze', [scale, ctx.b.ints([1])])]);
    res[0] = ctx.op('Reshape', [normInputGrad(ctx, gs, xh, inv, [2]), ctx.op('Shape', [x])]);
  }
  if (perChannelAffine) {
    if (ctx.needsGrad(1)) res[1] = channelSum(ctx, ctx.op('Mul', [g, ctx.op('Reshape', [xh, ctx.op('Shape', [x])])]), rank);
    if (ctx.needsGrad(2)) res[2] = channelSum(ctx, g, rank);
  } else {
    if (ctx.needsGrad(1)) res[1] = ctx.b.reduceSum(ctx.op('Mul', [grouped(g), xh]), [0, 2], false);
    if (ctx.needsGrad(2)) res[2] = ctx.b.reduceSum(grouped(g), [0, 2], false);
  }
  return res;
};

// Inference-mode BatchNormalization is affine per channel: y = (x − mean)·scale·inv + B, inv = 1/√(var + eps).
const batchNorm: VjpRule = (ctx) => {
  if (ctx.attrInt('training_mode', 0) === 1 || ctx.node.outputs.filter(Boolean).length > 1) {
    throw ctx.error('training-mode BatchNormalization (batch statistics) is not supported; export the model in eval mode');
  }
  const g = ctx.gradOut(0)!;
  const x = ctx.input(0);
  const rank = ctx.rank(x);
  const eps = ctx.attrFloat('epsilon', 1e-5);
  const inv = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [ctx.input(4), ctx.scalarLike(eps, x)])])]);
  const res: Array<string | null> = [null, null, null, null, null];
  if (ctx.needsGrad(0)) res[0] = ctx.op('Mul', [g, perChannel(ctx, ctx.op('Mul', [ctx.input(1), inv]), rank)]);
  if (ctx.needsGrad(1)) {
    const xh = ctx.op('Mul', [ctx.op('Sub', [x, perChannel(ctx, ctx.input(3), rank)]), perChannel(ctx, inv, rank)]);
    res[1] = channelSum(ctx, ctx.op('Mul', [g, xh]), rank);
  }
  if (ctx.needsGrad(2)) res[2] = channelSum(ctx, g, rank);
  return res;
};

export const spatialRules: Record<string, VjpRule> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: maxPool,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
  GlobalMaxPool: globalMaxPool,
  Resize: resize,
  Pad: pad,
  InstanceNormalization: instanceNorm,
  GroupNormalization: groupNorm,
  BatchNormalization: batchNorm,
};
