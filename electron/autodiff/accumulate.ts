// Gradient accumulation: a gradient model (forward + backward, no update) run once per micro-batch, and an update
// model that applies the optimiser to the accumulated gradients. The update model is the ordinary train step built
// over a forward whose loss is Σ_p Σ(p ⊙ G_p) with G_p fed as data: its gradient with respect to p is exactly G_p,
// so clipping, the skip on a non-finite norm, weight decay and the optimiser state are the very same ops as in the
// one-batch step.
//
// Each micro-batch's loss is a mean over its own weight (valid tokens for token losses, rows otherwise); the
// accumulated gradient is Σ_i w_i·g_i / Σ_i w_i, i.e. the gradient of the mean over every counted token of the big
// batch (equal to one big batch for token-mean and row-mean losses).

import type * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/builder.js';
import { type Model, type Tensor, OnnxError, emptyGraph, newModel, tensorToNumbers } from '../onnx/ir.js';
import { createSession, runSession } from '../onnx/ort.js';
import { buildGradientGraph } from './gradient.js';
import { type TrainStep, type TrainStepOptions, buildTrainStep } from './train-step.js';

export const ACCUMULATED_GRAD_SUFFIX = '.accumulated_grad';

export interface GradStep {
  model: Model;
  /** Trainable → output name of its gradient. */
  grads: Map<string, string>;
  lossOutput: string;
  /** Forward values exposed as outputs (e.g. the counted tokens). */
  extraOutputs: string[];
}

/** Forward + backward without the update: trainables are inputs, their gradients outputs. */
export function buildGradStep(forward: Model, opts: { loss: string; trainable: string[]; extraOutputs?: string[] }): GradStep {
  const initializers = new Map(forward.graph.initializers);
  const inputs = [...forward.graph.inputs];
  for (const p of opts.trainable) {
    const t = initializers.get(p);
    if (!t) throw new OnnxError(`trainable '${p}' is not an initializer of the model`);
    initializers.delete(p);
    inputs.push({ name: p, dtype: t.dtype, shape: [...t.dims] });
  }
  const promoted: Model = { ...forward, graph: { ...forward.graph, inputs, initializers, outputs: [] } };
  const { model, grads, infos } = buildGradientGraph(promoted, { loss: opts.loss, wrt: opts.trainable, addOutputs: true });
  const b = new GraphBuilder(model.graph);
  const lossOutput = b.op('Identity', [opts.loss], {}, { outputs: ['grad_step.loss'] });
  b.output(lossOutput, 'float32', []);
  for (const extra of opts.extraOutputs ?? []) {
    const info = infos.get(extra);
    if (!info) throw new OnnxError(`extra output '${extra}' is not a value of the model`);
    b.output(extra, info.dtype, info.shape);
  }
  return { model, grads, lossOutput, extraOutputs: opts.extraOutputs ?? [] };
}

/** The update alone: the train step over Σ_p Σ(p ⊙ G_p), G_p = input `${p}.accumulated_grad`. */
export function buildApplyStep(
  params: Map<string, Tensor>,
  opts: Omit<TrainStepOptions, 'loss' | 'trainable' | 'extraOutputs' | 'inputShapes'>,
): TrainStep {
  const graph = emptyGraph('apply_accumulated_gradients');
  const b = new GraphBuilder(graph);
  const terms: string[] = [];
  for (const [name, t] of params) {
    b.initializer(name, t);
    const g = b.input(`${name}${ACCUMULATED_GRAD_SUFFIX}`, t.dtype, [...t.dims]);
    terms.push(b.op('ReduceSum', [b.mul(name, g)], { keepdims: 0 }));
  }
  const loss = terms.length === 1 ? terms[0] : b.op('Sum', terms);
  return buildTrainStep(newModel(graph, 17), { ...opts, loss, trainable: [...params.keys()] });
}

export interface MicroBatch {
  feeds: Record<string, Tensor>;
  /** What this micro-batch's mean loss is a mean over (valid tokens, or rows); read from `weightOutput` when set. */
  weight?: number;
}

/** Runs the gradient model over micro-batches and sums the weighted gradients. */
export class GradAccumulator {
  private constructor(
    readonly gradStep: GradStep,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(gradStep: GradStep): Promise<GradAccumulator> {
    // Unpacked weights, as TrainRunner: the forward and the backward share one copy of each frozen weight.
    return new GradAccumulator(gradStep, await createSession(gradStep.model, { prepack: false }));
  }

  /**
   * Σ_i w_i·g_i / Σ_i w_i over the micro-batches, with w_i from `weightOutput` (e.g. counted tokens) or the batch's
   * own weight. Returns the update model's feeds (`${p}.accumulated_grad`), the weighted mean loss and Σ w.
   */
  async accumulate(
    params: Map<string, Tensor>,
    micro: MicroBatch[],
    weightOutput?: string,
  ): Promise<{ feeds: Record<string, Tensor>; loss: number; weight: number; extras: Array<Record<string, Tensor>> }> {
    const sums = new Map<string, Float64Array>();
    let lossSum = 0;
    let weightSum = 0;
    const extras: Array<Record<string, Tensor>> = [];
    for (const mb of micro) {
      const feeds: Record<string, Tensor> = { ...mb.feeds };
      for (const p of this.gradStep.grads.keys()) feeds[p] = params.get(p)!;
      const out = await runSession(this.session, feeds);
      const w = weightOutput ? tensorToNumbers(out[weightOutput])[0] : (mb.weight ?? 1);
      extras.push(out);
      if (w === 0) continue;
      lossSum += tensorToNumbers(out[this.gradStep.lossOutput])[0] * w;
      weightSum += w;
      for (const [p, gname] of this.gradStep.grads) {
        const g = out[gname].data as Float32Array;
        let acc = sums.get(p);
        if (!acc) sums.set(p, (acc = new Float64Array(g.length)));
        for (let i = 0; i < g.length; i++) acc[i] += w * g[i];
      }
    }
    const feeds: Record<string, Tensor> = {};
    for (const p of this.gradStep.grads.keys()) {
      const dims = [...params.get(p)!.dims];
      const acc = sums.get(p);
      const data = new Float32Array(params.get(p)!.data.length);
      if (acc && weightSum > 0) for (let i = 0; i < data.length; i++) data[i] = acc[i] / weightSum;
      feeds[`${p}${ACCUMULATED_GRAD_SUFFIX}`] = { dtype: 'float32', dims, data };
    }
    return { feeds, loss: weightSum > 0 ? lossSum / weightSum : 0, weight: weightSum, extras };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
