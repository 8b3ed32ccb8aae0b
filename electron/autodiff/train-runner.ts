// Runs a built train step repeatedly: keeps parameters and optimiser state between steps and feeds the step scalars.

import type * as ort from 'onnxruntime-node';
import { type Tensor, OnnxError, tensorToNumbers } from '../onnx/ir.js';
import { type SessionOptions, createSession, runSession } from '../onnx/ort.js';
import { stepScalars } from './optimizers.js';
import type { OptimizerConfig } from './optimizers.js';
import { type TrainStep, initialOptimizerState } from './train-step.js';

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number;
  /** False when the gradient was not finite and the update was skipped. */
  applied: boolean;
  extras: Record<string, Tensor>;
}

export class TrainRunner {
  private stepCount = 0;

  private constructor(
    private readonly trainStep: TrainStep,
    private readonly session: ort.InferenceSession,
    private readonly optimizer: OptimizerConfig,
    readonly params: Map<string, Tensor>,
    readonly state: Map<string, Tensor>,
  ) {}

  /** `params` holds the initial value of every trainable (taken from the forward model's initializers). */
  static async create(
    trainStep: TrainStep,
    optimizer: OptimizerConfig,
    params: Map<string, Tensor>,
    opts: SessionOptions & { state?: Map<string, Tensor>; step?: number } = {},
  ): Promise<TrainRunner> {
    // Unpacked weights: the forward and the backward share one copy of each frozen weight (see SessionOptions.prepack).
    const session = await createSession(trainStep.model, { prepack: false, ...opts });
    const state = opts.state ?? initialOptimizerState(trainStep, params);
    const runner = new TrainRunner(trainStep, session, optimizer, new Map(params), new Map(state));
    runner.stepCount = opts.step ?? 0;
    return runner;
  }

  get step(): number {
    return this.stepCount;
  }

  async run(batch: Record<string, Tensor>, lr: number): Promise<StepResult> {
    const t = this.stepCount + 1;
    const feeds: Record<string, Tensor> = { ...batch };
    for (const [name, value] of Object.entries(stepScalars(this.optimizer, lr, t))) {
      if (this.trainStep.scalarInputs.includes(name)) feeds[name] = { dtype: 'float32', dims: [], data: new Float32Array([value]) };
    }
    for (const io of this.trainStep.params) {
      feeds[io.param] = this.params.get(io.param)!;
      for (const s of io.state) feeds[s.input] = this.state.get(s.input)!;
    }
    const out = await runSession(this.session, feeds);
    const loss = tensorToNumbers(out[this.trainStep.lossOutput])[0];
    const gradNorm = tensorToNumbers(out[this.trainStep.gradNormOutput])[0];
    const applied = Number.isFinite(gradNorm);
    for (const io of this.trainStep.params) {
      const updated = out[io.updated];
      if (!updated) throw new OnnxError(`train step produced no '${io.updated}'`);
      this.params.set(io.param, updated);
      for (const s of io.state) this.state.set(s.input, out[s.updated]);
    }
    this.stepCount = t;
    const extras: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(out)) if (!k.endsWith('.updated')) extras[k] = v;
    return { step: t, loss, gradNorm, applied, extras };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
