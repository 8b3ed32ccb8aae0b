// Host steps of the task heads: candidate labels → one padded token batch; zero-shot scores → the best label.

import type { Tensor } from '../../onnx/ir.js';
import { labelsParams, splitLabels, zeroShotParams } from '../../nodes/heads.js';
import { type HostStep, type HostValue, HostStepError } from './io.js';
import { tokenizerFor } from './text.js';

function tensorInput(inputs: Record<string, HostValue>, port: string, node: string): Tensor {
  const v = inputs[port];
  if (v === undefined) throw new HostStepError(`node '${node}': input '${port}' is missing`);
  if (typeof v === 'string') throw new HostStepError(`node '${node}': input '${port}' must be a tensor, not text`);
  return v;
}

const labelsStep: HostStep = async (raw, inputs, ctx) => {
  const p = labelsParams.parse(raw);
  const typed = inputs.text;
  if (typed !== undefined && typeof typed !== 'string') throw new HostStepError(`node '${ctx.nodeId}': input 'text' must be text`);
  const labels = typed && splitLabels(typed).length ? splitLabels(typed) : p.labels;
  const tok = tokenizerFor(p.tokenizer, ctx.baseDir);
  const { eos, pad } = tok.specialIds;
  if (eos === undefined && p.append_eos) throw new HostStepError(`node '${ctx.nodeId}': tokenizer '${p.tokenizer}' has no end-of-text token to pool at`);
  const rows = labels.map((label) => {
    const ids = tok.encode(label, { addSpecialTokens: true });
    if (p.append_eos && eos !== undefined && ids[ids.length - 1] !== eos) ids.push(eos);
    if (ids.length > p.max_length) {
      throw new HostStepError(`node '${ctx.nodeId}': label '${label}' is ${ids.length} tokens long, more than max_length ${p.max_length}`);
    }
    return ids;
  });
  const T = p.padding === 'max_length' ? p.max_length : Math.max(...rows.map((r) => r.length));
  const L = rows.length;
  const ids = new BigInt64Array(L * T).fill(BigInt(pad ?? eos ?? 0));
  const mask = new BigInt64Array(L * T);
  rows.forEach((row, r) =>
    row.forEach((id, t) => {
      ids[r * T + t] = BigInt(id);
      mask[r * T + t] = 1n;
    }),
  );
  return {
    input_ids: { dtype: 'int64', dims: [L, T], data: ids },
    attention_mask: { dtype: 'int64', dims: [L, T], data: mask },
    labels: labels.join('\n'),
  };
};

function rowsOf(t: Tensor, port: string, node: string): Float64Array[] {
  if (t.dtype !== 'float32' || t.dims.length !== 2) {
    throw new HostStepError(`node '${node}': input '${port}' must be float32 [N, P], got ${t.dtype}[${t.dims.join(',')}]`);
  }
  const [n, width] = t.dims;
  const data = t.data as Float32Array;
  return Array.from({ length: n }, (_, i) => {
    const row = Float64Array.from(data.subarray(i * width, (i + 1) * width));
    const norm = Math.hypot(...row) || 1;
    return row.map((v) => v / norm);
  });
}

const zeroShotStep: HostStep = async (raw, inputs, ctx) => {
  const p = zeroShotParams.parse(raw);
  const images = rowsOf(tensorInput(inputs, 'image_embeds', ctx.nodeId), 'image_embeds', ctx.nodeId);
  const texts = rowsOf(tensorInput(inputs, 'text_embeds', ctx.nodeId), 'text_embeds', ctx.nodeId);
  const labelText = inputs.labels;
  if (typeof labelText !== 'string') throw new HostStepError(`node '${ctx.nodeId}': input 'labels' must be text`);
  const labels = labelText.split('\n');
  if (labels.length !== texts.length) {
    throw new HostStepError(`node '${ctx.nodeId}': ${labels.length} labels but ${texts.length} rows in 'text_embeds'`);
  }
  if (images[0] && texts[0] && images[0].length !== texts[0].length) {
    throw new HostStepError(
      `node '${ctx.nodeId}': image_embeds width ${images[0].length} differs from text_embeds width ${texts[0].length} (set the same projection_dim)`,
    );
  }
  const scores = new Float32Array(images.length * texts.length);
  const logitsOut = new Float32Array(images.length * texts.length);
  const best: string[] = [];
  images.forEach((img, b) => {
    const logits = texts.map((t) => p.logit_scale * t.reduce((s, v, i) => s + v * img[i], 0) + p.logit_bias);
    const top = Math.max(...logits);
    const probs =
      p.activation === 'sigmoid'
        ? logits.map((l) => 1 / (1 + Math.exp(-l)))
        : (() => {
            const exps = logits.map((l) => Math.exp(l - top));
            const sum = exps.reduce((a, c) => a + c, 0);
            return exps.map((e) => e / sum);
          })();
    probs.forEach((v, l) => (scores[b * texts.length + l] = v));
    logits.forEach((v, l) => (logitsOut[b * texts.length + l] = v));
    best.push(labels[logits.indexOf(top)]);
  });
  const dims = [images.length, texts.length];
  return {
    text: best.join('\n'),
    scores: { dtype: 'float32', dims, data: scores },
    logits: { dtype: 'float32', dims: [...dims], data: logitsOut },
  };
};

export const headHostSteps: Record<string, HostStep> = { 'text.labels': labelsStep, 'head.zero_shot': zeroShotStep };
