import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../onnx/builder.js';
import { type Model, type Tensor, emptyGraph, newModel, tensorFromNumbers, tensorToNumbers } from '../onnx/ir.js';
import { runModel } from '../onnx/ort.js';
import { loadModel } from '../onnx/proto.js';
import { analyticGradients, attachWeightedLoss, finiteDifferenceGradients, randomTensorLike } from './gradcheck.js';
import { crossEntropyLoss, infoNceLoss, mseLoss } from './losses.js';
import { type AdamWConfig, type SgdConfig } from './optimizers.js';
import { buildTrainStep } from './train-step.js';
import { TrainRunner } from './train-runner.js';

const fixtures = join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures');

/** loss = Σ (w ⊙ x)² + Σ w·c — a smooth function of w whose gradient we can write by hand. */
function quadraticModel(w0: number[], x: number[], c: number[]): Model {
  const g = emptyGraph('quadratic');
  const b = new GraphBuilder(g);
  b.initializer('w', tensorFromNumbers('float32', [w0.length], w0));
  const xs = b.constant('float32', [x.length], x, 'x');
  const cs = b.constant('float32', [c.length], c, 'c');
  const wx = b.mul('w', xs);
  const loss = b.add(b.op('ReduceSum', [b.mul(wx, wx)], { keepdims: 0 }), b.op('ReduceSum', [b.mul('w', cs)], { keepdims: 0 }));
  b.op('Identity', [loss], {}, { outputs: ['loss'] });
  b.output('loss', 'float32', []);
  return newModel(g, 17);
}

const gradOf = (w: number[], x: number[], c: number[]) => w.map((wi, i) => 2 * wi * x[i] * x[i] + c[i]);

describe('optimisers as graphs', () => {
  const w0 = [0.5, -1.25, 2.0, 0.1];
  const x = [1.5, 0.5, -0.75, 2.0];
  const c = [0.3, -0.2, 0.05, 1.0];

  it('AdamW matches a hand-computed torch.optim.AdamW reference within 1e-6', async () => {
    const cfg: AdamWConfig = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };
    const model = quadraticModel(w0, x, c);
    const step = buildTrainStep(model, { loss: 'loss', trainable: ['w'], optimizer: cfg });
    const runner = await TrainRunner.create(step, cfg, new Map([['w', model.graph.initializers.get('w')!]]));
    // Reference in float64, exactly as torch.optim.AdamW (decoupled decay, then the bias-corrected step).
    const w = [...w0];
    const m = w.map(() => 0);
    const v = w.map(() => 0);
    const lrs = [1e-2, 5e-3, 2e-2, 1e-2, 1e-3];
    for (let t = 1; t <= lrs.length; t++) {
      const lr = lrs[t - 1];
      const g = gradOf(w, x, c);
      for (let i = 0; i < w.length; i++) {
        w[i] *= 1 - lr * cfg.weightDecay;
        m[i] = cfg.beta1 * m[i] + (1 - cfg.beta1) * g[i];
        v[i] = cfg.beta2 * v[i] + (1 - cfg.beta2) * g[i] * g[i];
        const denom = Math.sqrt(v[i]) / Math.sqrt(1 - cfg.beta2 ** t) + cfg.eps;
        w[i] -= (lr / (1 - cfg.beta1 ** t)) * (m[i] / denom);
      }
      await runner.run({}, lr);
      const ours = tensorToNumbers(runner.params.get('w')!);
      for (let i = 0; i < w.length; i++) expect(Math.abs(ours[i] - w[i])).toBeLessThan(1e-6);
      const mOurs = tensorToNumbers(runner.state.get('w.exp_avg')!);
      for (let i = 0; i < w.length; i++) expect(Math.abs(mOurs[i] - m[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(m[i])));
    }
    await runner.release();
  });

  it('AdamW over several tensors with per-tensor weight decay matches the reference (flat update)', async () => {
    const cfg: AdamWConfig = { kind: 'adamw', beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
    const g = emptyGraph('two');
    const b = new GraphBuilder(g);
    b.initializer('w', tensorFromNumbers('float32', [2, 2], [0.5, -1, 2, 0.25]));
    b.initializer('bias', tensorFromNumbers('float32', [2], [0.1, -0.3]));
    const xs = b.constant('float32', [2], [1.5, -0.5], 'x');
    const y = b.add(b.op('MatMul', ['w', xs]), 'bias');
    const loss = b.op('ReduceSum', [b.mul(y, y)], { keepdims: 0 });
    b.op('Identity', [loss], {}, { outputs: ['loss'] });
    b.output('loss', 'float32', []);
    const model = newModel(g, 17);
    const step = buildTrainStep(model, { loss: 'loss', trainable: ['w', 'bias'], optimizer: cfg, weightDecayOf: (p) => (p === 'bias' ? 0 : 0.1) });
    const init = new Map([['w', model.graph.initializers.get('w')!], ['bias', model.graph.initializers.get('bias')!]]);
    const runner = await TrainRunner.create(step, cfg, init);
    const w = [0.5, -1, 2, 0.25];
    const bb = [0.1, -0.3];
    const x2 = [1.5, -0.5];
    const m = new Array(6).fill(0);
    const v = new Array(6).fill(0);
    for (let t = 1; t <= 3; t++) {
      const lr = 0.05;
      const yv = [w[0] * x2[0] + w[1] * x2[1] + bb[0], w[2] * x2[0] + w[3] * x2[1] + bb[1]];
      const grads = [2 * yv[0] * x2[0], 2 * yv[0] * x2[1], 2 * yv[1] * x2[0], 2 * yv[1] * x2[1], 2 * yv[0], 2 * yv[1]];
      const all = [...w, ...bb];
      for (let i = 0; i < 6; i++) {
        const wd = i < 4 ? 0.1 : 0;
        all[i] *= 1 - lr * wd;
        m[i] = cfg.beta1 * m[i] + (1 - cfg.beta1) * grads[i];
        v[i] = cfg.beta2 * v[i] + (1 - cfg.beta2) * grads[i] ** 2;
        all[i] -= (lr / (1 - cfg.beta1 ** t)) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - cfg.beta2 ** t) + cfg.eps));
      }
      w.splice(0, 4, ...all.slice(0, 4));
      bb.splice(0, 2, ...all.slice(4));
      await runner.run({}, lr);
      const ow = tensorToNumbers(runner.params.get('w')!);
      const ob = tensorToNumbers(runner.params.get('bias')!);
      expect(runner.params.get('w')!.dims).toEqual([2, 2]);
      for (let i = 0; i < 4; i++) expect(Math.abs(ow[i] - w[i])).toBeLessThan(1e-6);
      for (let i = 0; i < 2; i++) expect(Math.abs(ob[i] - bb[i])).toBeLessThan(1e-6);
    }
    await runner.release();
  });

  it('SGD with momentum and Nesterov matches torch.optim.SGD', async () => {
    const cfg: SgdConfig = { kind: 'sgd', momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 0.01 };
    const model = quadraticModel(w0, x, c);
    const step = buildTrainStep(model, { loss: 'loss', trainable: ['w'], optimizer: cfg });
    const runner = await TrainRunner.create(step, cfg, new Map([['w', model.graph.initializers.get('w')!]]));
    const w = [...w0];
    const buf = w.map(() => 0);
    const lr = 0.01;
    for (let t = 1; t <= 4; t++) {
      const g = gradOf(w, x, c).map((gi, i) => gi + cfg.weightDecay * w[i]);
      for (let i = 0; i < w.length; i++) {
        buf[i] = t === 1 ? g[i] : cfg.momentum * buf[i] + (1 - cfg.dampening) * g[i];
        w[i] -= lr * buf[i];
      }
      await runner.run({}, lr);
      const ours = tensorToNumbers(runner.params.get('w')!);
      for (let i = 0; i < w.length; i++) expect(Math.abs(ours[i] - w[i])).toBeLessThan(1e-6);
    }
    await runner.release();
  });

  it('clips by global norm and reports the pre-clip norm', async () => {
    const cfg: SgdConfig = { kind: 'sgd', momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 };
    const model = quadraticModel(w0, x, c);
    const step = buildTrainStep(model, { loss: 'loss', trainable: ['w'], optimizer: cfg, maxGradNorm: 0.5 });
    const runner = await TrainRunner.create(step, cfg, new Map([['w', model.graph.initializers.get('w')!]]));
    const g = gradOf(w0, x, c);
    const norm = Math.hypot(...g);
    const res = await runner.run({}, 1);
    expect(res.gradNorm).toBeCloseTo(norm, 4);
    const ours = tensorToNumbers(runner.params.get('w')!);
    const scale = 0.5 / (norm + 1e-6);
    for (let i = 0; i < w0.length; i++) expect(ours[i]).toBeCloseTo(w0[i] - g[i] * scale, 5);
    await runner.release();
  });

  it('skips the update when the gradient is not finite', async () => {
    const cfg: AdamWConfig = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    const model = quadraticModel([1, 2], [1, 1], [Number.NaN, 0]);
    const step = buildTrainStep(model, { loss: 'loss', trainable: ['w'], optimizer: cfg });
    const runner = await TrainRunner.create(step, cfg, new Map([['w', model.graph.initializers.get('w')!]]));
    const res = await runner.run({}, 0.1);
    expect(res.applied).toBe(false);
    expect(Array.from(tensorToNumbers(runner.params.get('w')!))).toEqual([1, 2]);
    await runner.release();
  });
});

describe('losses', () => {
  it('cross-entropy ignores -100 labels and matches a hand computation', async () => {
    const g = emptyGraph('ce');
    const b = new GraphBuilder(g);
    b.input('logits', 'float32', ['B', 'T', 5]);
    b.input('labels', 'int64', ['B', 'T']);
    const { loss, tokens } = crossEntropyLoss(b, 'logits', 'labels');
    b.output(loss, 'float32', []);
    b.output(tokens, 'float32', []);
    const logits = randomTensorLike('float32', [2, 3, 5], 7, 3);
    const labelValues = [1, -100, 4, 0, 2, -100];
    const labels = tensorFromNumbers('int64', [2, 3], labelValues);
    const out = await runModel(newModel(g, 17), { logits, labels });
    const z = tensorToNumbers(logits);
    let total = 0;
    let n = 0;
    labelValues.forEach((label, row) => {
      if (label === -100) return;
      const r = Array.from(z.slice(row * 5, row * 5 + 5));
      const max = Math.max(...r);
      const lse = max + Math.log(r.reduce((s, v) => s + Math.exp(v - max), 0));
      total += lse - r[label];
      n++;
    });
    expect(tensorToNumbers(out[loss])[0]).toBeCloseTo(total / n, 5);
    expect(tensorToNumbers(out[tokens])[0]).toBe(4);
  });

  it('cross-entropy gradient matches finite differences and stays finite for huge logits', async () => {
    const g = emptyGraph('ce');
    const b = new GraphBuilder(g);
    b.input('logits', 'float32', [4, 6]);
    b.input('labels', 'int64', [4]);
    const { loss } = crossEntropyLoss(b, 'logits', 'labels');
    b.op('Cast', [loss], { to: 11 }, { outputs: ['loss64'] });
    b.output('loss64', 'float64', []);
    const model = newModel(g, 17);
    const logits = randomTensorLike('float32', [4, 6], 3, 2);
    const labels = tensorFromNumbers('int64', [4], [0, 5, -100, 2]);
    const ours = await analyticGradients(model, { logits, labels }, ['logits'], 'loss64');
    const fd = await finiteDifferenceGradients(model, { logits, labels }, ['logits'], 'loss64', { step: 1e-2 });
    const a = tensorToNumbers(ours.logits);
    fd.logits.indices.forEach((i, k) => expect(Math.abs(a[i] - fd.logits.values[k])).toBeLessThan(2e-3));
    // Rows with an ignored label get no gradient.
    for (let j = 12; j < 18; j++) expect(a[j]).toBe(0);
    const huge = tensorFromNumbers('float32', [4, 6], Array.from({ length: 24 }, (_, i) => (i % 7) * 1e4));
    const gh = tensorToNumbers((await analyticGradients(model, { logits: huge, labels }, ['logits'], 'loss64')).logits);
    expect(gh.every(Number.isFinite)).toBe(true);
  });

  it('MSE and symmetric InfoNCE give the textbook values', async () => {
    const g = emptyGraph('losses');
    const b = new GraphBuilder(g);
    b.input('a', 'float32', [3, 4]);
    b.input('c', 'float32', [3, 4]);
    b.initializer('logit_scale', tensorFromNumbers('float32', [], [Math.log(1 / 0.07)]));
    const mse = mseLoss(b, 'a', 'c');
    const { loss: nce } = infoNceLoss(b, 'a', 'c', { logScale: 'logit_scale' });
    b.output(mse, 'float32', []);
    b.output(nce, 'float32', []);
    const a = randomTensorLike('float32', [3, 4], 11);
    const c = randomTensorLike('float32', [3, 4], 12);
    const out = await runModel(newModel(g, 17), { a, c });
    const av = tensorToNumbers(a);
    const cv = tensorToNumbers(c);
    expect(tensorToNumbers(out[mse])[0]).toBeCloseTo(av.reduce((s, v, i) => s + (v - cv[i]) ** 2, 0) / 12, 5);
    const rows = (v: Float64Array) => [0, 1, 2].map((r) => Array.from(v.slice(r * 4, r * 4 + 4)));
    const norm = (r: number[]) => r.map((x) => x / Math.hypot(...r));
    const an = rows(av).map(norm);
    const cn = rows(cv).map(norm);
    const logits = an.map((ra) => cn.map((rc) => ra.reduce((s, x, k) => s + x * rc[k], 0) / 0.07));
    const ce = (m: number[][]) =>
      m.reduce((s, r, i) => s + Math.log(r.reduce((t, x) => t + Math.exp(x), 0)) - r[i], 0) / m.length;
    const transposed = logits[0].map((_, j) => logits.map((r) => r[j]));
    expect(tensorToNumbers(out[nce])[0]).toBeCloseTo(0.5 * (ce(logits) + ce(transposed)), 4);
  });
});

describe('train step on a real export', () => {
  it.skipIf(!existsSync(fixtures))('drives the mlp_projector fixture loss down on a fixed target', async () => {
    const forward = loadModel(join(fixtures, 'mlp_projector.onnx'));
    // The export fixed batch 2; declare it symbolic so one train step serves any batch size.
    forward.graph.inputs[0].shape = ['B', 17, 32];
    forward.graph.outputs[0].shape = ['B', 17, 48];
    const b = new GraphBuilder(forward.graph);
    b.input('target', 'float32', ['B', 17, 48]);
    const loss = mseLoss(b, 'image_embeds', 'target');
    const trainable = [...forward.graph.initializers].filter(([, t]) => t.dtype === 'float32' && t.dims.length > 0).map(([n]) => n);
    const cfg: AdamWConfig = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    const step = buildTrainStep(forward, { loss, trainable, optimizer: cfg, maxGradNorm: 1 });
    const params = new Map<string, Tensor>(trainable.map((n) => [n, forward.graph.initializers.get(n)!]));
    const runner = await TrainRunner.create(step, cfg, params);
    const batch = {
      image_features: randomTensorLike('float32', [2, 17, 32], 21),
      target: randomTensorLike('float32', [2, 17, 48], 22, 0.5),
    };
    const losses: number[] = [];
    for (let i = 0; i < 60; i++) losses.push((await runner.run(batch, 1e-2)).loss);
    expect(losses[59]).toBeLessThan(losses[0] * 0.5);
    // The backward graph is batch-size agnostic: the same session trains on a batch of 3.
    const bigger = {
      image_features: randomTensorLike('float32', [3, 17, 32], 23),
      target: randomTensorLike('float32', [3, 17, 48], 24, 0.5),
    };
    expect(Number.isFinite((await runner.run(bigger, 1e-2)).loss)).toBe(true);
    await runner.release();
  });
});

// Keep the weighted-loss helper honest: L = Σ y ⊙ w differentiates to w for an identity model.
describe('weighted loss', () => {
  it('gradient of Σ x⊙w through Identity is w', async () => {
    const g = emptyGraph('id');
    const b = new GraphBuilder(g);
    b.input('x', 'float32', [2, 3]);
    b.op('Identity', ['x'], {}, { outputs: ['y'] });
    b.output('y', 'float32', [2, 3]);
    const w = randomTensorLike('float32', [2, 3], 5);
    const { model, loss } = attachWeightedLoss(newModel(g, 17), { y: w }, ['y']);
    const grads = await analyticGradients(model, { x: randomTensorLike('float32', [2, 3], 6) }, ['x'], loss);
    expect(Array.from(tensorToNumbers(grads.x))).toEqual(Array.from(tensorToNumbers(w)));
  });
});
