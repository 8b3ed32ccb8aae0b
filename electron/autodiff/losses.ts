// Losses as graph builders. Each returns the name of a rank-0 float32 loss value.
// Cross-entropy is LogSoftmax + GatherElements: its backward is (softmax − onehot)·g, stable for any logit range.

import type { GraphBuilder } from '../onnx/builder.js';

export const IGNORE_INDEX = -100;

/**
 * Mean token cross-entropy of `logits` [..., V] against int64 `labels` [...]; labels equal to `ignoreIndex` do not
 * count (mean over counted tokens; 0 when none count). Returns {loss, tokens: number of counted labels as float}.
 */
export function crossEntropyLoss(
  b: GraphBuilder,
  logits: string,
  labels: string,
  opts: { ignoreIndex?: number; labelSmoothing?: number; name?: string } = {},
): { loss: string; tokens: string } {
  const ignore = opts.ignoreIndex ?? IGNORE_INDEX;
  const valid = b.op('Not', [b.op('Equal', [labels, b.constant('int64', [], [ignore])])]);
  const safeLabels = b.op('Where', [valid, labels, b.constant('int64', [], [0])]);
  const logProbs = b.op('LogSoftmax', [logits], { axis: -1 });
  const picked = b.op('GatherElements', [logProbs, b.unsqueeze(safeLabels, [-1])], { axis: -1 });
  let nll = b.neg(b.squeeze(picked, [-1]));
  const smoothing = opts.labelSmoothing ?? 0;
  if (smoothing > 0) {
    // (1−ε)·nll + ε·mean over classes of −log p
    const uniform = b.neg(b.op('ReduceMean', [logProbs], { axes: [-1], keepdims: 0 }));
    nll = b.add(b.mul(nll, b.scalar(1 - smoothing)), b.mul(uniform, b.scalar(smoothing)));
  }
  const weight = b.cast(valid, 'float32');
  const tokens = b.op('ReduceSum', [weight], { keepdims: 0 });
  const total = b.op('ReduceSum', [b.mul(nll, weight)], { keepdims: 0 });
  const loss = b.op('Div', [total, b.op('Max', [tokens, b.scalar(1)])], {}, { name: opts.name ?? 'cross_entropy' });
  return { loss, tokens };
}

/** Mean squared error over all elements. */
export function mseLoss(b: GraphBuilder, prediction: string, target: string): string {
  const diff = b.sub(prediction, target);
  return b.op('ReduceMean', [b.mul(diff, diff)], { keepdims: 0 }, { name: 'mse' });
}

/**
 * Symmetric InfoNCE (CLIP / BLIP ITC): a [N,D] and b [N,D] are L2-normalised; logits = a·bᵀ·scale where
 * scale = exp(logitScale) (CLIP's learnable log-scale) or 1/temperature; loss = ½(CE(rows) + CE(columns)) with the
 * matching pairs on the diagonal.
 */
export function infoNceLoss(
  b: GraphBuilder,
  a: string,
  c: string,
  scale: { logScale: string } | { temperature: string },
  opts: { labelSmoothing?: number } = {},
): { loss: string; logits: string } {
  const normalise = (x: string) => {
    const norm = b.op('ReduceL2', [x], { axes: [-1], keepdims: 1 });
    return b.div(x, b.op('Max', [norm, b.scalar(1e-12)]));
  };
  const an = normalise(a);
  const cn = normalise(c);
  const sim = b.matmul(an, b.transpose(cn, [1, 0]));
  const factor = 'logScale' in scale ? b.op('Exp', [scale.logScale]) : b.op('Reciprocal', [scale.temperature]);
  const logits = b.mul(sim, factor);
  const eye = b.op('EyeLike', [logits]);
  const smoothing = opts.labelSmoothing ?? 0;
  const direction = (axis: number) => {
    const lp = b.op('LogSoftmax', [logits], { axis });
    const diag = b.op('ReduceSum', [b.mul(lp, eye)], { keepdims: 0 });
    const n = b.cast(b.op('Gather', [b.shape(logits), b.constant('int64', [], [0])]), 'float32');
    let nll = b.neg(b.div(diag, n));
    if (smoothing > 0) {
      const all = b.op('ReduceSum', [lp], { keepdims: 0 });
      const uniform = b.neg(b.div(all, b.mul(n, n)));
      nll = b.add(b.mul(nll, b.scalar(1 - smoothing)), b.mul(uniform, b.scalar(smoothing)));
    }
    return nll;
  };
  const loss = b.op('Mul', [b.add(direction(1), direction(0)), b.scalar(0.5)], {}, { name: 'info_nce' });
  return { loss, logits };
}
