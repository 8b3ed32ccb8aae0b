// Test support for the Hugging Face import tests: the fixture folders written by tools/hf_reference.py (the
// transformers forward in PyTorch) and comparisons against their expected outputs.

import { join } from 'node:path';
import { expect } from 'vitest';
import type { GraphDocument } from '../../engine/document.js';
import { type Tensor, tensorToNumbers } from '../../onnx/ir.js';
import { readSafetensors } from '../../onnx/safetensors.js';

export const TESTDATA = join(import.meta.dirname, 'testdata');

export function fixtureDir(name: string): string {
  return join(TESTDATA, name);
}

export interface Expected {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
  get(name: string): Tensor;
}

/** `<case>.expected.safetensors`: input.*, output.*, greedy.* tensors. */
export function loadExpected(name: string): Expected {
  const { tensors, metadata } = readSafetensors(join(TESTDATA, `${name}.expected.safetensors`));
  return {
    tensors,
    metadata,
    get(key) {
      const t = tensors.get(key);
      if (!t) throw new Error(`${name}.expected.safetensors has no tensor '${key}' (it has ${[...tensors.keys()].join(', ')})`);
      return t;
    },
  };
}

/** Largest |a − b| over max |b|: the relative error the 1e-4 bound is about. */
export function relativeError(ours: Tensor, ref: Tensor): { maxAbs: number; rel: number } {
  expect(ours.dims).toEqual(ref.dims);
  const a = tensorToNumbers(ours);
  const b = tensorToNumbers(ref);
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { maxAbs, rel: maxAbs / (scale || 1) };
}

/** Asserts ours ≈ ref within `rel` of ref's largest magnitude; returns the measured error. */
export function expectClose(ours: Tensor, ref: Tensor, rel = 1e-4, what = 'tensor'): { maxAbs: number; rel: number } {
  const err = relativeError(ours, ref);
  expect(err.rel, `${what}: max |ours − transformers| = ${err.maxAbs.toExponential(2)} (relative ${err.rel.toExponential(2)})`).toBeLessThanOrEqual(rel);
  return err;
}

/** Rows of an int64 [B, N] tensor as number arrays. */
export function tokenRows(t: Tensor): number[][] {
  const [rows, width] = [t.dims[0] ?? 0, t.dims[1] ?? 0];
  const v = tensorToNumbers(t);
  return Array.from({ length: rows }, (_, r) => Array.from(v.slice(r * width, (r + 1) * width)));
}

/** Row `r` of a [B, T, V] tensor at the positions its mask marks real (padded positions differ by convention). */
export function realPositions(t: Tensor, mask: Tensor, r: number): Tensor {
  const V = t.dims[2] ?? 0;
  const T = t.dims[1] ?? 0;
  const real = tokenRows(mask)[r].flatMap((m, j) => (m === 1 ? [j] : []));
  const data = t.data as Float32Array;
  return { dtype: 'float32', dims: [real.length, V], data: Float32Array.from(real.flatMap((j) => Array.from(data.subarray((r * T + j) * V, (r * T + j + 1) * V)))) };
}

/**
 * Composer's generated ids equal transformers' greedy tokens. transformers ran without stopping; Composer stops at
 * the decoder's eos ids (and leaves the eos out of the answer, padding the row with 0), so rows compare up to it.
 */
export function expectSameGreedy(generated: Tensor, want: number[][], doc: GraphDocument): void {
  const got = tokenRows(generated);
  const eos = (doc.nodes.find((n) => n.type === 'llm.decoder')?.params.eos_token_ids as number[] | undefined) ?? [];
  want.forEach((row, b) => {
    const stop = row.findIndex((t) => eos.includes(t));
    const expectedRow = stop >= 0 ? row.slice(0, stop) : row;
    expect(got[b].slice(0, expectedRow.length)).toEqual(expectedRow);
    if (stop >= 0) expect(got[b].slice(stop).every((t) => t === 0)).toBe(true);
  });
}
