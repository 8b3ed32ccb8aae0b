// Real fragments and feeds for the adapter tests: tiny llm.decoder builds, the gpt2 fixture, ORT runs.

import { type Model, type Tensor, tensorFromNumbers, tensorToNumbers } from '../../onnx/ir.js';
import { loadModel } from '../../onnx/proto.js';
import { runModel } from '../../onnx/ort.js';
import { Rng } from '../../engine/rng.js';
import { buildDecoder, headDim, pastKeyName, pastValueName, resolveDecoderConfig, type Flavour } from '../llms.js';
import type { OnnxFragment } from '../types.js';
import { modelFromFragment } from './common.js';

const GPT2_FIXTURE = '/work/shared/fixtures/gpt2_tiny.onnx';

export function loadGpt2Fixture(): Model {
  return loadModel(GPT2_FIXTURE);
}

export function tinyDecoder(flavour: Flavour, seed = 7): OnnxFragment {
  return buildDecoder({ preset: 'tiny', flavour }, { nodeId: `llm_${flavour}`, seed, inputShapes: {} });
}

export function randomFloats(dims: number[], seed: number, std = 1): Tensor {
  const n = dims.reduce((a, d) => a * d, 1);
  return { dtype: 'float32', dims, data: new Rng(seed).fillNormal(new Float32Array(n), std) };
}

/** Feeds for a decoder prefill: random embeddings, a mask (optionally with padding at the start), empty past. */
export function decoderFeeds(flavour: Flavour, batch: number, seq: number, seed = 1, padFirst = 0): Record<string, Tensor> {
  const cfg = resolveDecoderConfig({ preset: 'tiny', flavour });
  const feeds: Record<string, Tensor> = {
    inputs_embeds: randomFloats([batch, seq, cfg.hiddenSize], seed, 0.5),
    attention_mask: tensorFromNumbers('int64', [batch, seq], Array.from({ length: batch * seq }, (_, i) => (i % seq < padFirst && i < seq ? 0 : 1))),
    position_ids: tensorFromNumbers('int64', [batch, seq], Array.from({ length: batch * seq }, (_, i) => i % seq)),
  };
  for (let l = 0; l < cfg.numLayers; l++) {
    const dims = [batch, cfg.numKvHeads, 0, headDim(cfg)];
    feeds[pastKeyName(l)] = { dtype: 'float32', dims, data: new Float32Array(0) };
    feeds[pastValueName(l)] = { dtype: 'float32', dims, data: new Float32Array(0) };
  }
  return feeds;
}

export async function runFragment(fragment: OnnxFragment, feeds: Record<string, Tensor>, outputs?: string[]): Promise<Record<string, Tensor>> {
  const model = modelFromFragment(fragment);
  if (outputs) {
    for (const o of outputs) if (!model.graph.outputs.some((v) => v.name === o)) model.graph.outputs.push({ name: o, dtype: 'float32', shape: null });
  }
  return runModel(model, feeds);
}

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = tensorToNumbers(a);
  const y = tensorToNumbers(b);
  if (x.length !== y.length) return Infinity;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

export function maxAbs(a: Tensor): number {
  let m = 0;
  for (const v of tensorToNumbers(a)) m = Math.max(m, Math.abs(v));
  return m;
}

/** Sets every element of an initializer to seeded noise (to make a zero-initialised adapter non-trivial). */
export function perturb(fragment: OnnxFragment, name: string, seed: number, std = 0.1): void {
  const t = fragment.graph.initializers.get(name);
  if (!t) throw new Error(`no initializer '${name}'`);
  fragment.graph.initializers.set(name, randomFloats([...t.dims], seed, std));
}
