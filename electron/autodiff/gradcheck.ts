// Gradient checking: our backward graph against PyTorch reference gradients (fixture format of
// shared/fixtures/README.md) or against central finite differences.

import { GraphBuilder } from '../onnx/builder.js';
import { type Model, type Tensor, OnnxError, tensorFromNumbers, tensorSize, tensorToNumbers } from '../onnx/ir.js';
import { createSession, runSession } from '../onnx/ort.js';
import { createFloat64Session, widenFeeds } from './float64.js';
import { buildGradientGraph } from './gradient.js';

export interface TensorCheck {
  name: string;
  shape: number[];
  maxAbsError: number;
  maxRelError: number;
  ok: boolean;
  /** Elements compared (finite differences may sample a subset of a large tensor). */
  compared: number;
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

/** Returns a copy of the model where the named initializers are graph inputs (so they can be fed and perturbed). */
export function promoteInitializersToInputs(model: Model, names: string[]): { model: Model; values: Record<string, Tensor> } {
  const initializers = new Map(model.graph.initializers);
  const inputs = [...model.graph.inputs];
  const values: Record<string, Tensor> = {};
  for (const name of names) {
    const t = initializers.get(name);
    if (!t) continue;
    initializers.delete(name);
    inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
    values[name] = t;
  }
  return { model: { ...model, graph: { ...model.graph, inputs, initializers } }, values };
}

/**
 * Adds L = Σ_j sum(output_j ⊙ weight_j) (accumulated in float64) as output `gradcheck_loss`;
 * an output without a weight must already be a scalar and is added as is.
 */
export function attachWeightedLoss(model: Model, weights: Record<string, Tensor>, outputs: string[]): { model: Model; loss: string } {
  const graph = {
    ...model.graph,
    nodes: [...model.graph.nodes],
    outputs: [...model.graph.outputs],
    initializers: new Map(model.graph.initializers),
  };
  const b = new GraphBuilder(graph);
  const terms: string[] = [];
  for (const out of outputs) {
    const w = weights[out];
    const as64 = b.op('Cast', [out], { to: 11 });
    if (w) {
      const wName = b.initializer(b.fresh(`lossweight_${out}`), toFloat64(w));
      terms.push(b.op('ReduceSum', [b.mul(as64, wName)], { keepdims: 0 }));
    } else {
      terms.push(b.op('ReduceSum', [as64], { keepdims: 0 }));
    }
  }
  const total = terms.length === 1 ? terms[0] : b.op('Sum', terms);
  const loss = b.op('Identity', [total], {}, { outputs: ['gradcheck_loss'] });
  b.output(loss, 'float64', []);
  return { model: { ...model, graph }, loss };
}

function toFloat64(t: Tensor): Tensor {
  return { dtype: 'float64', dims: [...t.dims], data: Float64Array.from(tensorToNumbers(t)) };
}

/** Our gradients of `loss` with respect to `wrt` (graph inputs), evaluated on `feeds`. */
export async function analyticGradients(
  model: Model,
  feeds: Record<string, Tensor>,
  wrt: string[],
  loss: string,
): Promise<Record<string, Tensor>> {
  const inputShapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims]));
  const { model: withGrads, grads } = buildGradientGraph(model, { loss, wrt, inputShapes });
  const session = await createSession(withGrads);
  try {
    const names = [...grads.values()];
    const out = await runSession(session, feeds, names);
    const res: Record<string, Tensor> = {};
    for (const [w, g] of grads) res[w] = out[g];
    return res;
  } finally {
    await session.release();
  }
}

export interface FiniteDifferenceOptions {
  /** Relative step: h = step·max(1, |x|). */
  step?: number;
  /** At most this many elements per tensor are perturbed (chosen evenly); the rest are not compared. */
  maxElementsPerTensor?: number;
  /**
   * 'float64' (default) evaluates the loss on a float64 twin of the model, so the differences are not drowned in
   * float32 rounding noise; 'model' evaluates the model as it is.
   */
  precision?: 'float64' | 'model';
}

export interface FiniteDifferences {
  /** Per perturbed tensor: the flat element indices and the difference quotients there. */
  values: Record<string, { indices: number[]; values: Float64Array }>;
  /** 'float64' when the float64 twin was evaluated, else 'model'. */
  precision: 'float64' | 'model';
  /** Op types the float64 twin still ran in float32 (no float64 kernel in onnxruntime). */
  float32Ops: string[];
}

/** Central finite differences of the scalar `loss` for selected elements of each `wrt` feed. */
export async function finiteDifferenceGradients(
  model: Model,
  feeds: Record<string, Tensor>,
  wrt: string[],
  loss: string,
  opts: FiniteDifferenceOptions = {},
): Promise<Record<string, { indices: number[]; values: Float64Array }>> {
  return (await finiteDifferences(model, feeds, wrt, loss, opts)).values;
}

/** finiteDifferenceGradients, also saying how the loss was evaluated. */
export async function finiteDifferences(
  model: Model,
  feeds: Record<string, Tensor>,
  wrt: string[],
  loss: string,
  opts: FiniteDifferenceOptions = {},
): Promise<FiniteDifferences> {
  const step = opts.step ?? 1e-3;
  const limit = opts.maxElementsPerTensor ?? Infinity;
  const twin = (opts.precision ?? 'float64') === 'float64' ? await createFloat64Session(model) : null;
  const session = twin ? twin.session : await createSession(model, { optimize: false });
  const evalFeeds = twin ? widenFeeds(feeds) : feeds;
  const evalLoss = async (f: Record<string, Tensor>) => {
    const out = await runSession(session, f, [loss]);
    return tensorToNumbers(out[loss])[0];
  };
  const res: Record<string, { indices: number[]; values: Float64Array }> = {};
  try {
    for (const name of wrt) {
      const base = evalFeeds[name];
      if (!base) throw new OnnxError(`finite differences: no value fed for '${name}'`);
      if (base.dtype !== 'float32' && base.dtype !== 'float64') {
        throw new OnnxError(`finite differences: '${name}' is ${base.dtype}; only float32/float64 can be perturbed`);
      }
      const n = tensorSize(base.dims);
      const count = Math.min(n, limit);
      const indices = Array.from({ length: count }, (_, k) => Math.floor((k * n) / count));
      const values = new Float64Array(count);
      const data = (base.data as Float32Array | Float64Array).slice();
      const probe: Tensor = { ...base, data };
      const f = { ...evalFeeds, [name]: probe };
      for (let k = 0; k < count; k++) {
        const i = indices[k];
        const x0 = data[i];
        const h = step * Math.max(1, Math.abs(x0));
        data[i] = x0 + h;
        const hiActual = data[i] - x0; // float32 rounding of the step
        const lp = await evalLoss(f);
        data[i] = x0 - h;
        const loActual = x0 - data[i];
        const lm = await evalLoss(f);
        data[i] = x0;
        values[k] = (lp - lm) / (hiActual + loActual);
      }
      res[name] = { indices, values };
    }
  } finally {
    await session.release();
  }
  return { values: res, precision: twin ? 'float64' : 'model', float32Ops: twin ? twin.narrowed : [] };
}

/** Elementwise |ours − ref| ≤ atol + rtol·|ref|, over the given element indices (all when omitted). */
export function compareToReference(
  name: string,
  ours: Tensor,
  ref: ArrayLike<number>,
  tol: Tolerance,
  indices?: number[],
): TensorCheck {
  const a = tensorToNumbers(ours);
  const idx = indices ?? Array.from({ length: a.length }, (_, i) => i);
  if (!indices && ref.length !== a.length) {
    return { name, shape: ours.dims, maxAbsError: Infinity, maxRelError: Infinity, ok: false, compared: 0 };
  }
  let maxAbs = 0;
  let maxRel = 0;
  let ok = true;
  idx.forEach((i, k) => {
    const r = indices ? ref[k] : ref[i];
    // Equal values match even when infinite (inf − inf would be NaN); an infinite reference matches only itself
    // (its tolerance would be infinite); a NaN never matches.
    const err = a[i] === r ? 0 : Math.abs(a[i] - r);
    if (!(err <= (Number.isFinite(r) ? tol.atol + tol.rtol * Math.abs(r) : 0))) ok = false;
    if (!(err <= maxAbs)) maxAbs = err;
    const rel = err / Math.max(Math.abs(r), 1e-12);
    if (Math.abs(r) > tol.atol && !(rel <= maxRel)) maxRel = rel;
  });
  return { name, shape: ours.dims, maxAbsError: maxAbs, maxRelError: maxRel, ok, compared: idx.length };
}

export function randomTensorLike(dtype: Tensor['dtype'], dims: number[], seed: number, scale = 1): Tensor {
  // Small deterministic generator so checks are reproducible without a shared RNG dependency.
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const n = tensorSize(dims);
  const values = Array.from({ length: n }, () => (next() * 2 - 1) * scale);
  return tensorFromNumbers(dtype, dims, values);
}

export interface GradcheckOptions extends Tolerance {
  /** Compare against central finite differences instead of the reference gradients. */
  finiteDifferences?: boolean;
  maxElementsPerTensor?: number;
}

export interface GradcheckReport {
  checks: TensorCheck[];
  passed: number;
  total: number;
  /** Forward outputs compared to the reference outputs, when the reference has them. */
  outputs: TensorCheck[];
  /** With finite differences: how the loss was evaluated (see FiniteDifferences). */
  finiteDifferences?: { precision: 'float64' | 'model'; float32Ops: string[] };
}

export interface GradcheckReference {
  inputs: Record<string, Tensor>;
  outputs: Record<string, Tensor>;
  lossWeights: Record<string, Tensor>;
  grads: Record<string, Tensor>;
}

/** Splits a reference safetensors map into inputs, outputs, loss weights and gradients by key prefix. */
export function splitReference(tensors: Map<string, Tensor>): GradcheckReference {
  const ref: GradcheckReference = { inputs: {}, outputs: {}, lossWeights: {}, grads: {} };
  for (const [key, t] of tensors) {
    const dot = key.indexOf('.');
    const kind = key.slice(0, dot);
    const name = key.slice(dot + 1);
    if (kind === 'input') ref.inputs[name] = t;
    else if (kind === 'output') ref.outputs[name] = t;
    else if (kind === 'lossweight') ref.lossWeights[name] = t;
    else if (kind === 'grad') ref.grads[name] = t;
  }
  return ref;
}

/** Deterministic inputs for a model when no reference is given (ints drawn in [0, 4)). */
export function syntheticInputs(model: Model, seed = 1): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  model.graph.inputs.forEach((v, k) => {
    const dims = (v.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : 2));
    if (v.dtype === 'float32' || v.dtype === 'float64') feeds[v.name] = randomTensorLike(v.dtype, dims, seed + k);
    else {
      const n = tensorSize(dims);
      feeds[v.name] = tensorFromNumbers(v.dtype, dims, Array.from({ length: n }, (_, i) => (i * 7 + k) % 4));
    }
  });
  return feeds;
}

export async function gradcheck(model: Model, reference: GradcheckReference | null, opts: GradcheckOptions): Promise<GradcheckReport> {
  const feeds0 = reference ? reference.inputs : syntheticInputs(model);
  for (const v of model.graph.inputs) {
    if (!feeds0[v.name]) throw new OnnxError(`the reference has no 'input.${v.name}' for graph input '${v.name}'`);
  }
  const outputNames = model.graph.outputs.map((o) => o.name);
  let wrt: string[];
  let lossWeights: Record<string, Tensor>;
  if (reference) {
    wrt = Object.keys(reference.grads);
    lossWeights = reference.lossWeights;
  } else {
    // Without a reference: every float initializer and float input, against fixed random loss weights.
    wrt = [
      ...[...model.graph.initializers].filter(([, t]) => t.dtype === 'float32').map(([n]) => n),
      ...model.graph.inputs.filter((v) => v.dtype === 'float32').map((v) => v.name),
    ];
    const probe = await forwardOutputs(model, feeds0);
    lossWeights = Object.fromEntries(
      Object.entries(probe).map(([name, t], k) => [name, randomTensorLike('float32', t.dims, 1000 + k)]),
    );
  }
  for (const w of wrt) {
    if (!model.graph.initializers.has(w) && !model.graph.inputs.some((v) => v.name === w)) {
      throw new OnnxError(`the reference has 'grad.${w}' but the model has no initializer or input '${w}'`);
    }
  }
  const { model: promoted, values } = promoteInitializersToInputs(model, wrt);
  const feeds = { ...feeds0, ...values };
  const { model: withLoss, loss } = attachWeightedLoss(promoted, lossWeights, outputNames);
  const ours = await analyticGradients(withLoss, feeds, wrt, loss);

  const checks: TensorCheck[] = [];
  let fdInfo: GradcheckReport['finiteDifferences'];
  if (opts.finiteDifferences) {
    const fd = await finiteDifferences(withLoss, feeds, wrt, loss, {
      maxElementsPerTensor: opts.maxElementsPerTensor ?? 64,
    });
    for (const w of wrt) checks.push(compareToReference(w, ours[w], fd.values[w].values, opts, fd.values[w].indices));
    fdInfo = { precision: fd.precision, float32Ops: fd.float32Ops };
  } else {
    for (const w of wrt) checks.push(compareToReference(w, ours[w], tensorToNumbers(reference!.grads[w]), opts));
  }
  const outputs: TensorCheck[] = [];
  if (reference && Object.keys(reference.outputs).length) {
    const fwd = await forwardOutputs(model, feeds0);
    for (const [name, t] of Object.entries(reference.outputs)) {
      if (fwd[name]) outputs.push(compareToReference(name, fwd[name], tensorToNumbers(t), { rtol: 1e-4, atol: 1e-5 }));
    }
  }
  return { checks, passed: checks.filter((c) => c.ok).length, total: checks.length, outputs, ...(fdInfo ? { finiteDifferences: fdInfo } : {}) };
}

async function forwardOutputs(model: Model, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await createSession(model);
  try {
    return await runSession(session, feeds);
  } finally {
    await session.release();
  }
}
