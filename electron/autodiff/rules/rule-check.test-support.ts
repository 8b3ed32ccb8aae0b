// Test support: checks one VJP rule against central finite differences on a one-node model run by onnxruntime.
// A case names the op, its inputs (shapes, dtypes, values or a generator, which get gradients) and attributes; the
// check builds the model, attaches L = Σ output ⊙ random weights, and compares our gradients with the differences —
// once with the concrete shapes and once with symbolic dims (which exercises the rules' dynamic paths).

import { type AttrsInput, GraphBuilder } from '../../onnx/builder.js';
import { type DType, type Dim, type Model, type Tensor, emptyGraph, isFloat, newModel, tensorFromNumbers, tensorSize } from '../../onnx/ir.js';
import { createSession, runSession } from '../../onnx/ort.js';
import { inferShapes } from '../../onnx/shapes.js';
import { attachWeightedLoss, compareToReference, finiteDifferenceGradients, randomTensorLike } from '../gradcheck.js';
import { buildGradientGraph } from '../gradient.js';

export interface InputSpec {
  dims: number[];
  dtype?: DType;
  /** Exact values (indices, labels, pads, ...); otherwise uniform in ±scale. */
  values?: number[];
  /** Uniform range half-width for random float values (default 1). */
  scale?: number;
  /** Keep random values at least this far from zero (kinks of Relu/Abs/...). */
  awayFromZero?: number;
  /** Make random values positive (Sqrt, Log, ...): |v| + awayFromZero. */
  positive?: boolean;
  /** Well-separated values (an evenly spaced grid in ±scale, shuffled), so max/min-like ops have no near-ties. */
  distinct?: boolean;
  /** Store as an initializer (a constant of the model) instead of a graph input. */
  constant?: boolean;
  /** Differentiate with respect to this input (default: float graph inputs). */
  grad?: boolean;
  /** Dims declared on the graph input for the symbolic run (default: dim 0 of input 0 becomes 'batch'). */
  symbolic?: Dim[];
}

export interface RuleCase {
  name: string;
  op: string;
  /** null for an omitted optional input. */
  inputs: Array<InputSpec | null>;
  attrs?: AttrsInput;
  /** Number of node outputs, or explicit names ('' for an omitted optional output). Default 1. */
  outputs?: number | string[];
  opset?: number;
  /** Which outputs enter the loss (default: every float output). */
  lossOutputs?: number[];
  step?: number;
  rtol?: number;
  atol?: number;
  /** Skip the symbolic-dims run (for ops whose rules need static sizes). */
  staticOnly?: boolean;
  seed?: number;
}

export interface CaseResult {
  failures: string[];
  compared: number;
}

const inputName = (i: number) => `in${i}`;

function valuesFor(spec: InputSpec, seed: number): Tensor {
  const dtype = spec.dtype ?? 'float32';
  if (spec.values) {
    if (spec.values.length !== tensorSize(spec.dims)) {
      throw new Error(`values has ${spec.values.length} entries for dims [${spec.dims}]`);
    }
    return tensorFromNumbers(dtype, spec.dims, spec.values);
  }
  const t = randomTensorLike('float64', spec.dims, seed, spec.scale ?? 1);
  if (spec.distinct) {
    const n = t.data.length;
    const order = Array.from(t.data as Float64Array, (v, i) => ({ v, i })).sort((p, q) => p.v - q.v);
    const grid = new Array<number>(n);
    order.forEach(({ i }, rank) => (grid[i] = (spec.scale ?? 1) * (n === 1 ? 0.5 : -1 + (2 * rank) / (n - 1))));
    return tensorFromNumbers(dtype, spec.dims, grid);
  }
  const away = spec.awayFromZero ?? 0;
  const values = Array.from(t.data as Float64Array, (v) => {
    if (spec.positive) return Math.abs(v) + (away || 0.1);
    return away ? Math.sign(v || 1) * (Math.abs(v) + away) : v;
  });
  return tensorFromNumbers(dtype, spec.dims, values);
}

/** The one-node model with its loss, the feeds, and the inputs to differentiate. */
export function buildCase(c: RuleCase): { model: Model; loss: string; feeds: Record<string, Tensor>; wrt: string[]; symbolic: Record<string, Dim[]>; concrete: Record<string, Dim[]> } {
  const graph = emptyGraph(c.name);
  const b = new GraphBuilder(graph);
  const feeds: Record<string, Tensor> = {};
  const wrt: string[] = [];
  const symbolic: Record<string, Dim[]> = {};
  const concrete: Record<string, Dim[]> = {};
  const seed = c.seed ?? 7;
  const names = c.inputs.map((spec, i) => {
    if (!spec) return '';
    const name = inputName(i);
    const t = valuesFor(spec, seed + 101 * i);
    if (spec.constant) {
      b.initializer(name, t);
      return name;
    }
    const sym = spec.symbolic ?? (i === 0 && spec.dims.length > 0 ? ['batch', ...spec.dims.slice(1)] : spec.dims);
    b.input(name, t.dtype, sym);
    feeds[name] = t;
    symbolic[name] = sym;
    concrete[name] = spec.dims;
    if (spec.grad ?? isFloat(t.dtype)) wrt.push(name);
    return name;
  });
  const outs = c.outputs ?? 1;
  const outNames =
    typeof outs === 'number' ? Array.from({ length: outs }, (_, j) => `out${j}`) : outs.map((o) => o);
  b.op(c.op, names, c.attrs ?? {}, { outputs: outNames });
  const model = newModel(graph, c.opset ?? 17);
  const infos = inferShapes(model, concrete);
  const lossOutputs = (c.lossOutputs ?? outNames.map((_, j) => j))
    .map((j) => outNames[j])
    .filter((o) => o && isFloat(infos.get(o)?.dtype ?? 'int64'));
  for (const o of lossOutputs) b.output(o, infos.get(o)!.dtype, null);
  return { ...withLoss(model, lossOutputs, seed, feeds), feeds, wrt, symbolic, concrete };
}

function withLoss(model: Model, outputs: string[], seed: number, feeds: Record<string, Tensor>): { model: Model; loss: string } {
  const infos = inferShapes(model, Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims])));
  const weights: Record<string, Tensor> = {};
  outputs.forEach((o, j) => {
    const shape = infos.get(o)?.shape;
    if (!shape || shape.some((d) => typeof d !== 'number')) throw new Error(`output '${o}' has no static shape for its loss weight`);
    weights[o] = randomTensorLike('float32', shape as number[], seed + 1000 + j);
  });
  return attachWeightedLoss(model, weights, outputs);
}

/** Our gradients for the given input shapes (concrete or symbolic), evaluated on `feeds`. */
export async function gradientsFor(
  model: Model,
  loss: string,
  wrt: string[],
  inputShapes: Record<string, Dim[]>,
  feedSets: Array<Record<string, Tensor>>,
): Promise<Array<Record<string, Tensor>>> {
  const { model: withGrads, grads } = buildGradientGraph(model, { loss, wrt, inputShapes });
  const session = await createSession(withGrads);
  try {
    const results: Array<Record<string, Tensor>> = [];
    for (const feeds of feedSets) {
      const out = await runSession(session, feeds, [...grads.values()]);
      results.push(Object.fromEntries(wrt.map((w) => [w, out[grads.get(w)!]])));
    }
    return results;
  } finally {
    await session.release();
  }
}

/** Runs a case and returns a description of every mismatch (empty when the rule is right). */
export async function checkRuleCase(c: RuleCase): Promise<CaseResult> {
  const { model, loss, feeds, wrt, symbolic, concrete } = buildCase(c);
  if (wrt.length === 0) throw new Error(`case '${c.name}' differentiates nothing`);
  const tol = { rtol: c.rtol ?? 1e-2, atol: c.atol ?? 1e-3 };
  const fd = await finiteDifferenceGradients(model, feeds, wrt, loss, { step: c.step ?? 3e-3, maxElementsPerTensor: 48 });
  const failures: string[] = [];
  let compared = 0;
  const variants: Array<[string, Record<string, Dim[]>]> = [['static', concrete]];
  if (!c.staticOnly) variants.push(['symbolic', symbolic]);
  for (const [label, shapes] of variants) {
    const [ours] = await gradientsFor(model, loss, wrt, shapes, [feeds]);
    for (const w of wrt) {
      const got = ours[w];
      if (got.dims.join(',') !== feeds[w].dims.join(',')) {
        failures.push(`${label} ${w}: gradient shape [${got.dims}] != input shape [${feeds[w].dims}]`);
        continue;
      }
      const check = compareToReference(w, got, fd[w].values, tol, fd[w].indices);
      compared += check.compared;
      if (!check.ok) {
        const worst = fd[w].indices
          .map((i, k) => ({ i, ours: Array.from(got.data as Float32Array)[i], fd: fd[w].values[k] }))
          .sort((p, q) => Math.abs(q.ours - q.fd) - Math.abs(p.ours - p.fd))
          .slice(0, 3)
          .map((e) => `[${e.i}] ours ${e.ours.toFixed(5)} fd ${e.fd.toFixed(5)}`)
          .join(', ');
        failures.push(`${label} ${w}: max abs err ${check.maxAbsError.toExponential(2)} (${worst})`);
      }
    }
  }
  return { failures, compared };
}
