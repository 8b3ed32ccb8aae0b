// Optimisers as ONNX subgraphs: global-norm clipping, AdamW (PyTorch semantics) and SGD with momentum.
// Step-dependent scalars (learning rate, bias corrections) are fed per step, so one graph serves every step.

import type { GraphBuilder } from '../onnx/builder.js';

export interface AdamWConfig {
  kind: 'adamw';
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface SgdConfig {
  kind: 'sgd';
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

export type OptimizerConfig = AdamWConfig | SgdConfig;

export const DEFAULT_ADAMW: AdamWConfig = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Names of the per-step scalar inputs (float32, rank 0) a train step expects. */
export const STEP_INPUTS = {
  lr: 'optim.lr',
  /** AdamW: lr / (1 − β1^t). */
  stepSize: 'optim.step_size',
  /** AdamW: √(1 − β2^t). */
  bc2Sqrt: 'optim.bias_correction2_sqrt',
  /** SGD: 0 on the first step (momentum buffer starts as the gradient), else the momentum. */
  sgdMomentum: 'optim.sgd_momentum',
  /** SGD: 1 on the first step, else 1 − dampening. */
  sgdGradScale: 'optim.sgd_grad_scale',
} as const;

/** The optimiser state tensors kept per parameter, by suffix. */
export function stateSuffixes(cfg: OptimizerConfig): string[] {
  return cfg.kind === 'adamw' ? ['exp_avg', 'exp_avg_sq'] : cfg.momentum > 0 ? ['momentum_buffer'] : [];
}

/** The scalar values to feed for step t (1-based), computed in double precision as PyTorch does. */
export function stepScalars(cfg: OptimizerConfig, lr: number, step: number): Record<string, number> {
  if (cfg.kind === 'adamw') {
    return {
      [STEP_INPUTS.lr]: lr,
      [STEP_INPUTS.stepSize]: lr / (1 - cfg.beta1 ** step),
      [STEP_INPUTS.bc2Sqrt]: Math.sqrt(1 - cfg.beta2 ** step),
    };
  }
  return {
    [STEP_INPUTS.lr]: lr,
    [STEP_INPUTS.sgdMomentum]: step === 1 ? 0 : cfg.momentum,
    [STEP_INPUTS.sgdGradScale]: step === 1 ? 1 : 1 - cfg.dampening,
  };
}

export interface ParamUpdate {
  param: string;
  grad: string;
  /** Current optimiser state values (graph inputs), in stateSuffixes order. */
  state: string[];
  /** Weight decay: one value, or the name of a tensor of per-element values (0 for biases and norms). */
  weightDecay: number | string;
}

export interface ParamUpdateResult {
  newParam: string;
  newState: string[];
}

/**
 * Global-norm clipping: scales every gradient by min(1, maxNorm / (‖g‖ + 1e-6)). Returns the clipped gradients,
 * the pre-clip norm, and a boolean `finite` (false when the norm is NaN/Inf: the step must then be skipped).
 */
export function clipGradients(
  b: GraphBuilder,
  grads: string[],
  maxNorm: number | null,
): { grads: string[]; norm: string; finite: string } {
  const squares = grads.map((g) => b.op('ReduceSumSquare', [g], { keepdims: 0 }));
  const total = squares.length === 1 ? squares[0] : b.op('Sum', squares);
  const norm = b.op('Sqrt', [total], {}, { name: 'grad_norm' });
  const finite = b.op('Not', [b.op('Or', [b.op('IsNaN', [norm]), b.op('IsInf', [norm])])]);
  if (maxNorm === null) return { grads, norm, finite };
  const coef = b.op('Min', [b.scalar(1), b.div(b.scalar(maxNorm), b.add(norm, b.scalar(1e-6)))]);
  return { grads: grads.map((g) => b.mul(g, coef)), norm, finite };
}

/** AdamW as in torch.optim.AdamW: decoupled decay, then the bias-corrected Adam step. */
export function adamwUpdate(b: GraphBuilder, cfg: AdamWConfig, u: ParamUpdate): ParamUpdateResult {
  const [m, v] = u.state;
  const g = u.grad;
  let p = u.param;
  if (u.weightDecay !== 0) {
    const wd = typeof u.weightDecay === 'number' ? b.scalar(u.weightDecay) : u.weightDecay;
    p = b.mul(p, b.sub(b.scalar(1), b.mul(wd, STEP_INPUTS.lr)));
  }
  const m1 = b.add(b.mul(m, b.scalar(cfg.beta1)), b.mul(g, b.scalar(1 - cfg.beta1)));
  const v1 = b.add(b.mul(v, b.scalar(cfg.beta2)), b.mul(b.mul(g, g), b.scalar(1 - cfg.beta2)));
  const denom = b.add(b.div(b.op('Sqrt', [v1]), STEP_INPUTS.bc2Sqrt), b.scalar(cfg.eps));
  const newParam = b.sub(p, b.mul(b.div(m1, denom), STEP_INPUTS.stepSize));
  return { newParam, newState: [m1, v1] };
}

/** SGD as in torch.optim.SGD (weight decay added to the gradient, optional momentum and Nesterov). */
export function sgdUpdate(b: GraphBuilder, cfg: SgdConfig, u: ParamUpdate): ParamUpdateResult {
  let g = u.grad;
  if (u.weightDecay !== 0) {
    g = b.add(g, b.mul(u.param, typeof u.weightDecay === 'number' ? b.scalar(u.weightDecay) : u.weightDecay));
  }
  if (cfg.momentum === 0) return { newParam: b.sub(u.param, b.mul(g, STEP_INPUTS.lr)), newState: [] };
  const [buf] = u.state;
  const buf1 = b.add(b.mul(buf, STEP_INPUTS.sgdMomentum), b.mul(g, STEP_INPUTS.sgdGradScale));
  const direction = cfg.nesterov ? b.add(g, b.mul(buf1, b.scalar(cfg.momentum))) : buf1;
  return { newParam: b.sub(u.param, b.mul(direction, STEP_INPUTS.lr)), newState: [buf1] };
}
