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

  const clipped = clipGradients(
    b,
    opts.trainable.map((p) => grads.get(p)!),
    opts.maxGradNorm ?? null,
  );
  const params: TrainableIO[] = [];
  opts.trainable.forEach((p, k) => {
    const t = paramInfo.get(p)!;
    const state = stateSuffixes(cfg).map((suffix) => b.input(`${p}.${suffix}`, t.dtype, [...t.dims]));
    const update = { param: p, grad: clipped.grads[k], state, weightDecay: opts.weightDecayOf?.(p) ?? cfg.weightDecay };
    const res = cfg.kind === 'adamw' ? adamwUpdate(b, cfg, update) : sgdUpdate(b, cfg, update);
    // Skip the whole step when the gradient is not finite.
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

  const lossOutput = b.op('Identity', [opts.loss], {}, { outputs: ['train.loss'] });
  b.output(lossOutput, 'float32', []);
  const gradNormOutput = b.op('Identity', [clipped.norm], {}, { outputs: ['train.grad_norm'] });
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
