// VJP rules for data-movement ops: reshapes, transposes, broadcasts, concatenation, splitting, slicing and
// gathering. Index-selecting ops share one idea: apply the same selection to an iota (the flat positions of X),
// then scatter-add the cotangent back at those positions — correct for any axis, step, negative or repeated index.

import { tensorFromNumbers } from '../../onnx/ir.js';
import type { VjpContext, VjpRule } from '../context.js';

const reshapeBack: VjpRule = (ctx) => [ctx.op('Reshape', [ctx.gradOut(0)!, ctx.op('Shape', [ctx.input(0)])])];

const transpose: VjpRule = (ctx) => {
  const rank = ctx.rank(ctx.input(0));
  const perm = ctx.attrInts('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return [ctx.op('Transpose', [ctx.gradOut(0)!], { perm: inverse })];
};

const expand: VjpRule = (ctx) => [ctx.sumTo(ctx.gradOut(0)!, ctx.input(0), ctx.output(0)), null];

const concat: VjpRule = (ctx) => {
  const g = ctx.gradOut(0)!;
  const rank = ctx.rank(ctx.output(0));
  const axis = ctx.axis(ctx.attrInt('axis', 0), rank);
  const sizes = ctx.node.inputs.map((x) => {
    const d = ctx.shape(x)?.[axis];
    return typeof d === 'number' ? ctx.b.ints([d]) : ctx.op('Slice', [ctx.op('Shape', [x]), ctx.b.ints([axis]), ctx.b.ints([axis + 1])]);
  });
  const split = ctx.op('Concat', sizes, { axis: 0 });
  const parts = ctx.opN('Split', [g, split], { axis }, ctx.node.inputs.length);
  return parts.map((p, i) => (ctx.needsGrad(i) ? p : null));
};

const split: VjpRule = (ctx) => {
  const rank = ctx.rank(ctx.input(0));
  const axis = ctx.axis(ctx.attrInt('axis', 0), rank);
  const parts = ctx.node.outputs.map((_, j) => ctx.gradOutOrZeros(j));
  return [ctx.op('Concat', parts, { axis }), null];
};

/** Flat positions of X, shaped like X (int64). */
export function iota(ctx: VjpContext, x: string): string {
  const size = ctx.op('Size', [x]);
  const range = ctx.op('Range', [ctx.b.constant('int64', [], [0]), size, ctx.b.constant('int64', [], [1])]);
  return ctx.op('Reshape', [range, ctx.op('Shape', [x])]);
}

/** Scatter-adds a cotangent back to X's flat positions selected by `positions` (same shape as the cotangent). */
export function scatterBack(ctx: VjpContext, positions: string, g: string): string {
  const x = ctx.input(0);
  const flatZeros = ctx.op('ConstantOfShape', [ctx.op('Reshape', [ctx.op('Size', [x]), ctx.b.ints([1])])], {
    value: tensorFromNumbers(ctx.dtype(x), [1], [0]),
  });
  const flat = ctx.op(
    'ScatterElements',
    [flatZeros, ctx.op('Reshape', [positions, ctx.b.ints([-1])]), ctx.op('Reshape', [g, ctx.b.ints([-1])])],
    { axis: 0, reduction: 'add' },
  );
  return ctx.op('Reshape', [flat, ctx.op('Shape', [x])]);
}

/** Re-runs the forward op on X's iota instead of X (same attributes and index inputs). */
function selectPositions(ctx: VjpContext): string {
  const inputs = [iota(ctx, ctx.input(0)), ...ctx.node.inputs.slice(1)];
  const attrs = Object.fromEntries(Object.entries(ctx.node.attrs).map(([k, v]) => [k, v]));
  return ctx.op(ctx.node.opType, inputs, attrs);
}

const indexSelect: VjpRule = (ctx) => {
  const res: Array<string | null> = ctx.node.inputs.map(() => null);
  res[0] = scatterBack(ctx, selectPositions(ctx), ctx.gradOut(0)!);
  return res;
};

// Embedding lookups (Gather axis 0 on a table): scatter rows directly, no iota the size of the table.
const gather: VjpRule = (ctx) => {
  const axis = ctx.axis(ctx.attrInt('axis', 0), ctx.rank(ctx.input(0)));
  if (axis !== 0) return indexSelect(ctx);
  const x = ctx.input(0);
  const idx = ctx.input(1);
  const g = ctx.gradOut(0)!;
  // Negative indices count from the end, as Gather allows.
  // A rank-0 row count, so a scalar index stays a scalar (a [1] here would add an axis to the scatter indices).
  const rows = ctx.op('Cast', [ctx.op('Gather', [ctx.op('Shape', [x]), ctx.b.constant('int64', [], [0])])], { to: ctx.dtypeCode(idx) });
  const zeroIdx = ctx.op('Cast', [ctx.b.constant('int64', [], [0])], { to: ctx.dtypeCode(idx) });
  const positive = ctx.op('Where', [ctx.op('Less', [idx, zeroIdx]), ctx.op('Add', [idx, rows]), idx]);
  const indices = ctx.op('Unsqueeze', [ctx.op('Cast', [positive], { to: 7 }), ctx.b.ints([-1])]);
  return [ctx.op('ScatterND', [ctx.zerosLike(x), indices, g], { reduction: 'add' }), null];
};

export const shapeRules: Record<string, VjpRule> = {
  Reshape: (ctx) => [...reshapeBack(ctx), null],
  Flatten: reshapeBack,
  Squeeze: (ctx) => [...reshapeBack(ctx), null],
  Unsqueeze: (ctx) => [...reshapeBack(ctx), null],
  Transpose: transpose,
  Expand: expand,
  Concat: concat,
  Split: split,
  Slice: indexSelect,
  Gather: gather,
  GatherElements: indexSelect,
  GatherND: indexSelect,
  Tile: indexSelect,
};
