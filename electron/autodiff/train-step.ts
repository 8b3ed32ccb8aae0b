// The train-step builder: forward + backward + optimiser in ONE ONNX model, so one ORT session run is one step.
// Trainable parameters and optimiser state are graph inputs and come back updated as outputs; frozen weights stay
// constant initializers. A non-finite gradient norm leaves parameters and state unchanged (the step is skipped).

import { GraphBuilder } from '../onnx/builder.js';
import { type Dim, type Model, type Tensor, OnnxError, allocData } from '../onnx/ir.js';
import { buildGradientGraph } from './gradient.js';
import {
  type OptimizerConfig,
  STEP_INPUTS,
  adamwUpdate,
  clipGradients,
  sgdUpdate,
  stateSuffixes,
} from './optimizers.js';

export interface TrainStepOptions {
  /** The scalar float loss value of the forward model. */
  loss: string;
  /** Initializers to train. */
  trainable: string[];
  optimizer: OptimizerConfig;
  /** Global-norm clipping threshold (null: no clipping). */
  maxGradNorm?: number | null;
  /** Weight decay override per parameter (e.g. 0 for biases and norm weights). */
  weightDecayOf?: (param: string) => number;
  inputShapes?: Record<string, Dim[]>;
  /** Extra forward values to expose as outputs (e.g. logits for metrics). */
  extraOutputs?: string[];
}

export interface TrainableIO {
  param: string;
  /** Output name of the updated parameter. */
  updated: string;
  /** Optimiser state input names and the matching updated output names. */
  state: Array<{ input: string; updated: string }>;
}

export interface TrainStep {
  model: Model;
  params: TrainableIO[];
  /** Step scalar inputs the model expects (subset of STEP_INPUTS values). */
  scalarInputs: string[];
  lossOutput: string;
  gradNormOutput: string;
}

export const updatedName = (name: string) => `${name}.updated`;

export function buildTrainStep(forward: Model, opts: TrainStepOptions): TrainStep {
  for (const p of opts.trainable) {
    if (!forward.graph.initializers.has(p)) {
      throw new OnnxError(`trainable '${p}' is not an initializer of the model`);
    }
  }
  // Trainables become graph inputs (fed each step); everything else stays baked in.
  const initializers = new Map(forward.graph.initializers);
  const inputs = [...forward.graph.inputs];
  const paramInfo = new Map<string, Tensor>();
  for (const p of opts.trainable) {
    const t = initializers.get(p)!;
    initializers.delete(p);
    paramInfo.set(p, t);
    inputs.push({ name: p, dtype: t.dtype, shape: [...t.dims] });
  }
  const promoted: Model = { ...forward, graph: { ...forward.graph, inputs, initializers, outputs: [] } };

  const { model, grads, infos } = buildGradientGraph(promoted, {
    loss: opts.loss,
    wrt: opts.trainable,
    inputShapes: opts.inputShapes,
    addOutputs: false,
  });
  const b = new GraphBuilder(model.graph);
  const cfg = opts.optimizer;
  const scalarInputs =
    cfg.kind === 'adamw'
      ? [STEP_INPUTS.lr, STEP_INPUTS.stepSize, STEP_INPUTS.bc2Sqrt]
      : cfg.momentum > 0
        ? [STEP_INPUTS.lr, STEP_INPUTS.sgdMomentum, STEP_INPUTS.sgdGradScale]
        : [STEP_INPUTS.lr];
  for (const s of scalarInputs) b.input(s, 'float32', []);

  const wdOf = (p: string) => opts.weightDecayOf?.(p) ?? cfg.weightDecay;
  const dtypes = new Set([...paramInfo.values()].map((t) => t.dtype));
  const params: TrainableIO[] = [];
  let gradNorm: string;
  if (dtypes.size === 1) {
    // One flat vector for all trainables: the optimiser is a handful of ops however many tensors there are.
    const dtype = [...dtypes][0];
    const sizes = opts.trainable.map((p) => paramInfo.get(p)!.data.length);
    const total = sizes.reduce((a, n) => a + n, 0);
    const flat = (names: string[]) => {
      const parts = names.map((n) => b.reshape(n, [-1]));
      return parts.length === 1 ? parts[0] : b.concat(parts, 0);
    };
    const clipped = clipGradients(b, [flat(opts.trainable.map((p) => grads.get(p)!))], opts.maxGradNorm ?? null);
    gradNorm = clipped.norm;
    const stateInputs = stateSuffixes(cfg).map((suffix) =>
      opts.trainable.map((p) => b.input(`${p}.${suffix}`, dtype, [...paramInfo.get(p)!.dims])),
    );
    const decays = opts.trainable.map(wdOf);
    const weightDecay: number | string = decays.every((d) => d === decays[0])
      ? decays[0]
      : b.constant(dtype, [total], decays.flatMap((d, i) => new Array<number>(sizes[i]).fill(d)), 'weight_decay');
    const flatParams = flat(opts.trainable);
    const flatState = stateInputs.map(flat);
    const update = { param: flatParams, grad: clipped.grads[0], state: flatState, weightDecay };
    const res = cfg.kind === 'adamw' ? adamwUpdate(b, cfg, update) : sgdUpdate(b, cfg, update);
    // Skip the whole step when the gradient is not finite, then cut the flat vectors back into tensors.
    const unflatten = (fresh: string, old: string, names: string[]) => {
      const kept = b.op('Where', [clipped.finite, fresh, old]);
      const pieces = names.length === 1 ? [kept] : b.opN('Split', [kept, b.ints(sizes)], { axis: 0 }, names.length);
      return names.map((n, i) => {
        const dims = paramInfo.get(opts.trainable[i])!.dims;
        const out = b.op('Reshape', [pieces[i], b.ints(dims.length ? dims : [])], {}, { outputs: [updatedName(n)] });
        b.output(out, dtype, [...dims]);
        return out;
      });
    };
    const newParams = unflatten(res.newParam, flatParams, opts.trainable);
    const newStates = stateInputs.map((names, k) => unflatten(res.newState[k], flatState[k], names));
    opts.trainable.forEach((p, i) => {
      params.push({
        param: p,
        updated: newParams[i],
        state: stateInputs.map((names, k) => ({ input: names[i], updated: newStates[k][i] })),
      });
    });
  } else {
    const clipped = clipGradients(b, opts.trainable.map((p) => grads.get(p)!), opts.maxGradNorm ?? null);
    gradNorm = clipped.norm;
    opts.trainable.forEach((p, k) => {
      const t = paramInfo.get(p)!;
      const state = stateSuffixes(cfg).map((suffix) => b.input(`${p}.${suffix}`, t.dtype, [...t.dims]));
      const update = { param: p, grad: clipped.grads[k], state, weightDecay: wdOf(p) };
      const res = cfg.kind === 'adamw' ? adamwUpdate(b, cfg, update) : sgdUpdate(b, cfg, update);
      const guard = (fresh: string, old: string, name: string) =>
        b.op('Where', [clipped.finite, fresh, old], {}, { outputs: [name] });
      const updated = guard(res.newParam, p, updatedName(p));
      b.output(updated, t.dtype, [...t.dims]);
      const stateIO = state.map((input, i) => {
        const out = guard(res.newState[i], input, updatedName(input));
        b.output(out, t.dtype, [...t.dims]);
        return { input, updated: out };
      });
      params.push({ param: p, updated, state: stateIO });
    });
  }

  const lossOutput = b.op('Identity', [opts.loss], {}, { outputs: ['train.loss'] });
  b.output(lossOutput, 'float32', []);
  const gradNormOutput = b.op('Identity', [gradNorm], {}, { outputs: ['train.grad_norm'] });
  b.output(gradNormOutput, 'float32', []);
  for (const extra of opts.extraOutputs ?? []) {
    const info = infos.get(extra);
    if (!info) throw new OnnxError(`extra output '${extra}' is not a value of the model`);
    b.output(extra, info.dtype, info.shape);
  }
  return { model, params, scalarInputs, lossOutput, gradNormOutput };
}

/** Zero-initialised optimiser state for every trainable, keyed by state input name. */
export function initialOptimizerState(step: TrainStep, params: Map<string, Tensor>): Map<string, Tensor> {
  const state = new Map<string, Tensor>();
  for (const io of step.params) {
    const p = params.get(io.param);
    if (!p) throw new OnnxError(`no value for trainable '${io.param}'`);
    for (const s of io.state) state.set(s.input, { dtype: p.dtype, dims: [...p.dims], data: allocData(p.dtype, p.data.length) });
  }
  return state;
}
