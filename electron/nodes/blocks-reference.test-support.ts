// Plain TypeScript reference maths for the block tests: row-major float64 matrices, written for clarity, not speed.
// Tests compare ONNX fragments run by onnxruntime against these.

import { type Graph, type Tensor, tensorToNumbers } from '../onnx/ir.js';

/** A [rows, cols] matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: ArrayLike<number>): Mat {
  const m = { rows, cols, data: new Float64Array(rows * cols) };
  if (data) {
    if (data.length !== rows * cols) throw new Error(`mat ${rows}x${cols} needs ${rows * cols} values, got ${data.length}`);
    m.data.set(Array.from(data));
  }
  return m;
}

export function at(m: Mat, r: number, c: number): number {
  return m.data[r * m.cols + c];
}

/** A weight from a fragment as a matrix ([out, in] for Linear weights; vectors as 1 × n). */
export function weightMat(graph: Graph, name: string): Mat {
  const t = graph.initializers.get(name);
  if (!t) throw new Error(`no initializer '${name}'`);
  const cols = t.dims[t.dims.length - 1];
  return mat(t.data.length / cols, cols, tensorToNumbers(t));
}

export function vec(graph: Graph, name: string): Float64Array {
  const t = graph.initializers.get(name);
  if (!t) throw new Error(`no initializer '${name}'`);
  return tensorToNumbers(t);
}

/** Row `b` block of a [B, T, D] tensor as a T × D matrix. */
export function batchSlice(t: Tensor, b: number): Mat {
  const [, rows, cols] = t.dims;
  const all = tensorToNumbers(t);
  return mat(rows, cols, all.subarray(b * rows * cols, (b + 1) * rows * cols));
}

/** x · Wᵀ + bias, W in PyTorch layout [out, in]. */
export function linearRef(x: Mat, w: Mat, bias?: ArrayLike<number>): Mat {
  if (x.cols !== w.cols) throw new Error(`linear: x has ${x.cols} columns, W expects ${w.cols}`);
  const y = mat(x.rows, w.rows);
  for (let r = 0; r < x.rows; r++) {
    for (let o = 0; o < w.rows; o++) {
      let acc = bias ? bias[o] : 0;
      for (let i = 0; i < x.cols; i++) acc += at(x, r, i) * at(w, o, i);
      y.data[r * y.cols + o] = acc;
    }
  }
  return y;
}

export function addRef(a: Mat, b: Mat): Mat {
  const y = mat(a.rows, a.cols);
  for (let i = 0; i < y.data.length; i++) y.data[i] = a.data[i] + b.data[i];
  return y;
}

export function mapRef(a: Mat, f: (v: number, i: number) => number): Mat {
  const y = mat(a.rows, a.cols);
  for (let i = 0; i < y.data.length; i++) y.data[i] = f(a.data[i], i);
  return y;
}

export function layerNormRef(x: Mat, g: ArrayLike<number>, b: ArrayLike<number>, eps: number): Mat {
  const y = mat(x.rows, x.cols);
  for (let r = 0; r < x.rows; r++) {
    let mean = 0;
    for (let c = 0; c < x.cols; c++) mean += at(x, r, c);
    mean /= x.cols;
    let v = 0;
    for (let c = 0; c < x.cols; c++) v += (at(x, r, c) - mean) ** 2;
    v /= x.cols;
    for (let c = 0; c < x.cols; c++) y.data[r * x.cols + c] = ((at(x, r, c) - mean) / Math.sqrt(v + eps)) * g[c] + b[c];
  }
  return y;
}

/** erf by Abramowitz–Stegun 7.1.26 refined with a series for small |x| (error < 1e-7, enough for float32 checks). */
export function erf(x: number): number {
  if (Math.abs(x) < 2) {
    // Maclaurin series converges fast here.
    let sum = 0;
    let term = x;
    for (let n = 0; n < 60; n++) {
      sum += term / (2 * n + 1);
      term *= (-x * x) / (n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return Math.sign(x) * y;
}

export const geluRef = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
export const quickGeluRef = (v: number) => v / (1 + Math.exp(-1.702 * v));
export const siluRef = (v: number) => v / (1 + Math.exp(-v));
export const geluNewRef = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

/**
 * Multi-head attention on projected q [Tq, H·hd], k and v [Tk, H·hd]; `allowed(i, j)` says whether query i may
 * attend to key j (default: all).
 */
export function attentionRef(q: Mat, k: Mat, v: Mat, heads: number, allowed?: (i: number, j: number) => boolean): Mat {
  const hd = q.cols / heads;
  const out = mat(q.rows, q.cols);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < q.rows; i++) {
      const scores: number[] = [];
      for (let j = 0; j < k.rows; j++) {
        if (allowed && !allowed(i, j)) {
          scores.push(-Infinity);
          continue;
        }
        let s = 0;
        for (let c = 0; c < hd; c++) s += at(q, i, h * hd + c) * at(k, j, h * hd + c);
        scores.push(s / Math.sqrt(hd));
      }
      const m = Math.max(...scores);
      const e = scores.map((s) => (s === -Infinity ? 0 : Math.exp(s - m)));
      const z = e.reduce((a, b) => a + b, 0);
      for (let c = 0; c < hd; c++) {
        let acc = 0;
        for (let j = 0; j < k.rows; j++) acc += (e[j] / z) * at(v, j, h * hd + c);
        out.data[i * out.cols + h * hd + c] = acc;
      }
    }
  }
  return out;
}

/** Largest |a − b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])));
  return m;
}
