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

// TopK: the Values cotangent goes back to the positions the Indices output names (distinct along the axis).
const topK: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const g = ctx.gradOut(0);
  if (!g) return [null, null];
  const axis = ctx.axis(ctx.attrInt('axis', -1), ctx.rank(x));
  const indices = ctx.ensureOutput(1, 'indices', 'int64', ctx.shape(ctx.output(0)));
  return [ctx.op('ScatterElements', [ctx.zerosLike(x), indices, g], { axis, reduction: 'add' }), null];
};

/** Concat of slices [from, to) of Shape(value) and literal dims, as an int64 shape tensor. */
function shapeOf(ctx: VjpContext, parts: Array<[string, number, number] | number[]>): string {
  const pieces = parts.map((p) =>
    typeof p[0] === 'string'
      ? ctx.op('Slice', [ctx.op('Shape', [p[0]]), ctx.b.ints([p[1] as number]), ctx.b.ints([p[2] as number])])
      : ctx.b.ints(p as number[]),
  );
  return ctx.op('Concat', pieces, { axis: 0 });
}

// DepthToSpace / SpaceToDepth are a reshape, a 6-D transpose and a reshape: the adjoint runs the same steps backwards
// (cotangent viewed in the transposed 6-D layout, inverse permutation, reshape to X).
const depthToSpace: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const y = ctx.output(0);
  const b = ctx.attrInt('blocksize', 0);
  if (b < 1) throw ctx.error('blocksize must be a positive int');
  const mode = ctx.attrString('mode', 'DCR');
  if (mode !== 'DCR' && mode !== 'CRD') throw ctx.error(`unknown mode '${mode}'`);
  // Forward 6-D layout after its transpose: [N, C/b², H, b, W, b].
  const view = shapeOf(ctx, [[y, 0, 2], [x, 2, 3], [b], [x, 3, 4], [b]]);
  const perm = mode === 'DCR' ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4];
  const moved = ctx.op('Transpose', [ctx.op('Reshape', [ctx.gradOut(0)!, view])], { perm });
  return [ctx.op('Reshape', [moved, ctx.op('Shape', [x])])];
};

const spaceToDepth: VjpRule = (ctx) => {
  const x = ctx.input(0);
  const y = ctx.output(0);
  const b = ctx.attrInt('blocksize', 0);
  if (b < 1) throw ctx.error('blocksize must be a positive int');
  // Forward 6-D layout after its transpose: [N, b, b, C, H/b, W/b].
  const view = shapeOf(ctx, [[x, 0, 1], [b, b], [x, 1, 2], [y, 2, 4]]);
  const moved = ctx.op('Transpose', [ctx.op('Reshape', [ctx.gradOut(0)!, view])], { perm: [0, 3, 4, 1, 5, 2] });
  return [ctx.op('Reshape', [moved, ctx.op('Shape', [x])])];
};

export const shapeRules: Record<string, VjpRule> = {
  TopK: topK,
  DepthToSpace: depthToSpace,
  SpaceToDepth: spaceToDepth,
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
