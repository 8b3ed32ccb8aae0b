// VJP rules for MatMul and Gemm (numpy matmul semantics, incl. 1-D operands and batch broadcasting).

import type { Dim } from '../../onnx/ir.js';
import type { VjpContext, VjpRule } from '../context.js';

/** Transpose swapping the last two axes of a tensor of the given rank. */
function swapLast(ctx: VjpContext, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return ctx.op('Transpose', [x], { perm });
}

const matmul: VjpRule = (ctx) => {
  let g = ctx.gradOut(0)!;
  let a = ctx.input(0);
  let b = ctx.input(1);
  const aShape = ctx.shape(a);
  const bShape = ctx.shape(b);
  const yShape = ctx.shape(ctx.output(0));
  if (!aShape || !bShape || !yShape) throw ctx.error('MatMul gradients need the ranks of both operands');
  const dtype = ctx.dtype(ctx.output(0));

  // Promote 1-D operands to matrices (numpy rules), remembering how to undo it.
  let as: Dim[] = aShape;
  let bs: Dim[] = bShape;
  let ys: Dim[] = yShape;
  if (aShape.length === 1) {
    a = ctx.op('Unsqueeze', [a, ctx.b.ints([0])]);
    as = [1, aShape[0]];
    g = ctx.op('Unsqueeze', [g, ctx.b.ints([ys.length - (bShape.length === 1 ? 0 : 1)])]);
    ys = bShape.length === 1 ? [1] : [...ys.slice(0, -1), 1, ys[ys.length - 1]];
  }
  if (bShape.length === 1) {
    b = ctx.op('Unsqueeze', [b, ctx.b.ints([1])]);
    bs = [bShape[0], 1];
    g = ctx.op('Unsqueeze', [g, ctx.b.ints([ys.length])]);
    ys = [...ys, 1];
  }
  const ra = as.length;
  const rb = bs.length;
  const ry = ys.length;
  const M = as[ra - 2];
  const K = as[ra - 1];
  const N = bs[rb - 1];
  const batch = ys.slice(0, ry - 2);
  const gName = ctx.declare(g, dtype, ys);
  const aName = ctx.declare(a, dtype, as);
  const bName = ctx.declare(b, dtype, bs);

  let da: string | null = null;
  let db: string | null = null;
  if (ctx.needsGrad(0)) {
    const full = ctx.declare(rb === 2 ? gradTimesWeightT(ctx, gName, bName, ry, N) : ctx.op('MatMul', [gName, swapLast(ctx, bName, rb)]), dtype, [...batch, M, K]);
    da = rb === 2 && ra === ry ? full : ctx.sumTo(full, aName, full);
    if (aShape.length === 1) da = ctx.op('Reshape', [da, ctx.op('Shape', [ctx.input(0)])]);
  }
  if (ctx.needsGrad(1)) {
    if (rb === 2 && ra > 2) {
      // Weight matrix shared over a batch: one [K, rows]·[rows, N] product, no [batch, K, N] intermediate.
      const a2 = ctx.op('Reshape', [aName, kAsRow(ctx, aName, K)]);
      const g2 = ctx.op('Reshape', [gName, kAsRow(ctx, gName, N)]);
      db = ctx.op('MatMul', [ctx.op('Transpose', [a2], { perm: [1, 0] }), g2]);
    } else {
      const full = ctx.declare(ctx.op('MatMul', [swapLast(ctx, aName, ra), gName]), dtype, [...batch, K, N]);
      db = ra === 2 && rb === ry ? full : ctx.sumTo(full, bName, full);
    }
    if (bShape.length === 1) db = ctx.op('Reshape', [db, ctx.op('Shape', [ctx.input(1)])]);
  }
  return [da, db];
};

/**
 * g·Bᵀ for a matrix B [K, N] as Gemm(transB) on B itself over g's rows ([..., M, N] → [..., M, K]). No Transpose of
 * B: onnxruntime then holds one copy of a constant weight for the forward and the backward (a constant-folded Bᵀ
 * would be a second copy of every frozen weight of a real-size model).
 */
function gradTimesWeightT(ctx: VjpContext, g: string, b: string, rank: number, N: Dim): string {
  if (rank === 2) return ctx.op('Gemm', [g, b], { transB: 1 });
  const rows = ctx.op('Gemm', [ctx.op('Reshape', [g, kAsRow(ctx, g, N)]), b], { transB: 1 });
  const lead = ctx.op('Slice', [ctx.op('Shape', [g]), ctx.b.ints([0]), ctx.b.ints([-1])]);
  const k = ctx.op('Slice', [ctx.op('Shape', [b]), ctx.b.ints([0]), ctx.b.ints([1])]);
  return ctx.op('Reshape', [rows, ctx.op('Concat', [lead, k], { axis: 0 })]);
}

/** Shape [-1, last] for flattening all leading axes; uses the static size when known. */
function kAsRow(ctx: VjpContext, x: string, last: Dim): string {
  if (typeof last === 'number') return ctx.b.ints([-1, last]);
  const lastDim = ctx.op('Slice', [ctx.op('Shape', [x]), ctx.b.ints([-1]), ctx.b.ints([2 ** 31])]);
  return ctx.op('Concat', [ctx.b.ints([-1]), lastDim], { axis: 0 });
}

// Y = alpha·op(A)·op(B) + beta·C
const gemm: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const [a, b] = [ctx.input(0), ctx.input(1)];
  const alpha = ctx.attrFloat('alpha', 1);
  const beta = ctx.attrFloat('beta', 1);
  const ta = ctx.attrInt('transA', 0);
  const tb = ctx.attrInt('transB', 0);
  const gemmOp = (x: string, y: string, transA: number, transB: number) =>
    ctx.op('Gemm', [x, y], { alpha, beta: 0, transA, transB });
  let da: string | null = null;
  let db: string | null = null;
  if (ctx.needsGrad(0)) {
    if (!ta && !tb) da = gemmOp(g, b, 0, 1);
    else if (!ta && tb) da = gemmOp(g, b, 0, 0);
    else if (ta && !tb) da = gemmOp(b, g, 0, 1);
    else da = gemmOp(b, g, 1, 1);
  }
  if (ctx.needsGrad(1)) {
    if (!ta && !tb) db = gemmOp(a, g, 1, 0);
    else if (!ta && tb) db = gemmOp(g, a, 1, 0);
    else if (ta && !tb) db = gemmOp(a, g, 0, 0);
    else db = gemmOp(g, a, 1, 1);
  }
  let dc: string | null = null;
  if (ctx.hasInput(2) && ctx.needsGrad(2)) {
    const scaled = beta === 1 ? g : ctx.op('Mul', [g, ctx.scalarLike(beta, ctx.output(0))]);
    dc = ctx.sumTo(scaled, ctx.input(2), ctx.output(0));
  }
  return [da, db, dc];
};

export const linalgRules: Record<string, VjpRule> = {
  MatMul: matmul,
  Gemm: gemm,
};
