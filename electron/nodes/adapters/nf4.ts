// NF4 quantisation as bitsandbytes does it (QLoRA, Dettmers et al. 2023), and its in-graph dequantisation with
// standard ONNX ops.
//
// - 16 code values (bitsandbytes functional.get_4bit_type('nf4')); absmax per block of 64 weights; each weight →
//   nearest code of w/absmax; two codes per byte, first element in the HIGH nibble; flat order = PyTorch [out, in].
// - Double quantisation: offset = mean(absmax); absmax − offset quantised blockwise (256) with the 8-bit dynamic map
//   (create_dynamic_map(signed=True)); dequant: dyn[q]·absmax2[block] + offset.
// - In the graph: packed uint8 → Cast int32 → high = p / 16, low = p − 16·high → interleave → Gather on the code
//   table → × absmax per block → reshape to the weight. The result is a frozen value named like the old weight.

import type { GraphBuilder } from '../../onnx/builder.js';
import type { Graph, Tensor } from '../../onnx/ir.js';
import { AdapterError, floatData } from './common.js';
import type { WeightLayout } from './targets.js';

/** The 16 NF4 code values, index 0..15. */
export const NF4_CODE: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

export const NF4_BLOCKSIZE = 64;
export const DOUBLE_QUANT_BLOCKSIZE = 256;

/** bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), in float32 like torch. */
export function createDynamicMap(): Float32Array {
  const f = Math.fround;
  const data: number[] = [];
  const maxExp = 7;
  for (let i = 0; i < maxExp; i++) {
    const items = 2 ** i + 1;
    const bounds = Array.from({ length: items }, (_, k) => f(0.1 + (0.9 * k) / (items - 1)));
    const scale = 10 ** (-(maxExp - 1) + i);
    for (let k = 0; k + 1 < items; k++) {
      const mean = f(f(bounds[k] + bounds[k + 1]) / 2);
      data.push(f(scale * mean), f(-scale * mean));
    }
  }
  data.push(0, 1);
  if (data.length !== 256) throw new Error(`dynamic map has ${data.length} values, expected 256`);
  return Float32Array.from(data.sort((a, b) => a - b));
}

export const DYNAMIC_MAP: Float32Array = createDynamicMap();

/** Index of the nearest value in a sorted code table. */
function nearest(code: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = code.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (code[mid] <= x) lo = mid;
    else hi = mid;
  }
  return Math.abs(x - code[lo]) <= Math.abs(code[hi] - x) ? lo : hi;
}

export interface BlockwiseQuantized {
  /** Code index per element (padded to whole blocks). */
  codes: Uint8Array;
  /** Per-block scale. */
  absmax: Float32Array;
}

/** Absmax per block, then the nearest code of each x/absmax. Values are padded with zeros to whole blocks. */
export function quantizeBlockwise(values: Float32Array, blocksize: number, code: ArrayLike<number>): BlockwiseQuantized {
  const nBlocks = Math.ceil(values.length / blocksize);
  const codes = new Uint8Array(nBlocks * blocksize);
  const absmax = new Float32Array(nBlocks);
  for (let blk = 0; blk < nBlocks; blk++) {
    const start = blk * blocksize;
    const end = Math.min(values.length, start + blocksize);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(values[i]));
    absmax[blk] = m;
    for (let i = start; i < start + blocksize; i++) {
      const v = i < end && m > 0 ? values[i] / m : 0;
      codes[i] = nearest(code, v);
    }
  }
  return { codes, absmax };
}

export function dequantizeBlockwise(q: BlockwiseQuantized, blocksize: number, code: ArrayLike<number>, length: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.fround(code[q.codes[i]] * q.absmax[Math.floor(i / blocksize)]);
  return out;
}

/** One NF4-quantised weight (bitsandbytes Params4bit state). */
export interface Nf4Weight {
  /** PyTorch shape [out, in]. */
  shape: [number, number];
  blocksize: number;
  /** Two codes per byte, first in the high nibble; length = padded elements / 2. */
  packed: Uint8Array;
  /** First-level absmax, float32 (no double quantisation). */
  absmax?: Float32Array;
  /** Double quantisation: uint8 codes of absmax − offset (padded to whole 256-blocks), their scales and the offset. */
  nested?: { codes: Uint8Array; absmax2: Float32Array; offset: number; blocksize: number; count: number };
}

/** Quantises a weight given in PyTorch [out, in] row-major order. */
export function quantizeNf4(values: Float32Array, shape: [number, number], opts: { blocksize?: number; doubleQuant?: boolean } = {}): Nf4Weight {
  const blocksize = opts.blocksize ?? NF4_BLOCKSIZE;
  if (!Number.isInteger(Math.log2(blocksize)) || blocksize < 16) throw new AdapterError(`NF4 blocksize must be a power of two ≥ 16, got ${blocksize}`);
  if (values.length !== shape[0] * shape[1]) throw new AdapterError(`NF4: ${values.length} values do not fill shape [${shape}]`);
  const q = quantizeBlockwise(values, blocksize, NF4_CODE);
  const packed = new Uint8Array(q.codes.length / 2);
  for (let i = 0; i < packed.length; i++) packed[i] = (q.codes[2 * i] << 4) | q.codes[2 * i + 1];
  if (!(opts.doubleQuant ?? true)) return { shape, blocksize, packed, absmax: q.absmax };
  let sum = 0;
  for (const a of q.absmax) sum += a;
  const offset = Math.fround(sum / q.absmax.length);
  const centered = q.absmax.map((a) => a - offset);
  const nested = quantizeBlockwise(centered, DOUBLE_QUANT_BLOCKSIZE, DYNAMIC_MAP);
  return {
    shape, blocksize, packed,
    nested: { codes: nested.codes, absmax2: nested.absmax, offset, blocksize: DOUBLE_QUANT_BLOCKSIZE, count: q.absmax.length },
  };
}

/** First-level absmax of a quantised weight (dequantising the nested constants when double-quantised). */
export function nf4Absmax(w: Nf4Weight): Float32Array {
  if (w.absmax) return w.absmax;
  const n = w.nested!;
  const centered = dequantizeBlockwise({ codes: n.codes, absmax: n.absmax2 }, n.blocksize, DYNAMIC_MAP, n.count);
  return centered.map((c) => Math.fround(c + n.offset));
}

/** Back to float32, PyTorch [out, in] order. */
export function dequantizeNf4(w: Nf4Weight): Float32Array {
  const absmax = nf4Absmax(w);
  const n = w.shape[0] * w.shape[1];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const byte = w.packed[i >> 1];
    const code = i % 2 === 0 ? byte >> 4 : byte & 15;
    out[i] = Math.fround(NF4_CODE[code] * absmax[Math.floor(i / w.blocksize)]);
  }
  return out;
}

/** Storage bits of one quantised weight (packed codes, absmax constants; the shared code tables are not counted). */
export function nf4StorageBits(w: Nf4Weight): number {
  const packedBits = w.packed.length * 8;
  if (w.absmax) return packedBits + w.absmax.length * 32;
  const n = w.nested!;
  return packedBits + n.count * 8 + n.absmax2.length * 32 + 32;
}

// ---- graph side -------------------------------------------------------------------------------------------------

/** Initializer names of a quantised weight `<weight>`: `<weight>.nf4`, `.absmax`, `.absmax2`, `.absmax_offset`. */
export const NF4_SUFFIX = '.nf4';
export const NF4_CODE_NAME = 'nf4.code';
export const DYNAMIC_CODE_NAME = 'nf4.dynamic_code';

function sharedTable(b: GraphBuilder, name: string, values: ArrayLike<number>): string {
  if (!b.graph.initializers.has(name)) {
    b.reserve(name);
    b.graph.initializers.set(name, { dtype: 'float32', dims: [values.length], data: Float32Array.from(values) });
  }
  return name;
}

function put(b: GraphBuilder, name: string, t: Tensor): string {
  b.reserve(name);
  b.graph.initializers.set(name, t);
  return name;
}

/**
 * Replaces the float initializer `weightName` by its NF4 form and a dequantisation subgraph whose output is a value
 * with the same name, so every reader is unchanged. `layout` is how the graph stores the weight ('in_out' = [in,out]).
 */
export function replaceWithNf4(b: GraphBuilder, weightName: string, layout: WeightLayout, opts: { blocksize: number; doubleQuant: boolean }): Nf4Weight {
  const g = b.graph;
  const t = g.initializers.get(weightName);
  if (!t || t.dims.length !== 2) throw new AdapterError(`NF4: '${weightName}' is not a 2-D float initializer`);
  const data = floatData(t, `NF4 weight '${weightName}'`);
  // bitsandbytes quantises the PyTorch [out, in] layout.
  const [d0, d1] = t.dims;
  const shape: [number, number] = layout === 'out_in' ? [d0, d1] : [d1, d0];
  let torchOrder = data;
  if (layout === 'in_out') {
    torchOrder = new Float32Array(data.length);
    for (let i = 0; i < d0; i++) for (let o = 0; o < d1; o++) torchOrder[o * d0 + i] = data[i * d1 + o];
  }
  const q = quantizeNf4(torchOrder, shape, opts);
  g.initializers.delete(weightName);
  const code = sharedTable(b, NF4_CODE_NAME, NF4_CODE);
  const packed = put(b, `${weightName}${NF4_SUFFIX}`, { dtype: 'uint8', dims: [q.packed.length], data: q.packed });
  const p = b.cast(packed, 'int32');
  const high = b.div(p, b.scalar(16, 'int32'));
  const low = b.sub(p, b.mul(high, b.scalar(16, 'int32')));
  const idx = b.reshape(b.concat([b.unsqueeze(high, [1]), b.unsqueeze(low, [1])], 1), [-1]);
  const nBlocks = q.packed.length * 2 / q.blocksize;
  const values = b.reshape(b.op('Gather', [code, idx], { axis: 0 }), [nBlocks, q.blocksize]);
  let absmax: string;
  if (q.absmax) {
    absmax = put(b, `${weightName}.absmax`, { dtype: 'float32', dims: [q.absmax.length], data: q.absmax });
  } else {
    const n = q.nested!;
    const dyn = sharedTable(b, DYNAMIC_CODE_NAME, DYNAMIC_MAP);
    // Only the real absmax codes are stored; the graph pads them to whole 256-blocks.
    const qa = put(b, `${weightName}.absmax`, { dtype: 'uint8', dims: [n.count], data: n.codes.slice(0, n.count) });
    const a2 = put(b, `${weightName}.absmax2`, { dtype: 'float32', dims: [n.absmax2.length, 1], data: n.absmax2 });
    const off = put(b, `${weightName}.absmax_offset`, { dtype: 'float32', dims: [], data: Float32Array.of(n.offset) });
    const codes = b.op('Gather', [dyn, b.cast(qa, 'int32')], { axis: 0 });
    const padded = b.op('Pad', [codes, b.ints([0, n.absmax2.length * n.blocksize - n.count])]);
    const centered = b.mul(b.reshape(padded, [n.absmax2.length, n.blocksize]), a2);
    const flat = b.op('Slice', [b.reshape(centered, [-1]), b.ints([0]), b.ints([n.count]), b.ints([0])]);
    absmax = b.add(flat, off);
  }
  const scaled = b.reshape(b.mul(values, b.unsqueeze(absmax, [1])), [-1]);
  const count = shape[0] * shape[1];
  const trimmed = b.op('Slice', [scaled, b.ints([0]), b.ints([count]), b.ints([0])]);
  if (layout === 'out_in') {
    b.op('Reshape', [trimmed, b.ints(shape)], {}, { outputs: [weightName] });
  } else {
    b.op('Transpose', [b.reshape(trimmed, shape)], { perm: [1, 0] }, { outputs: [weightName] });
  }
  g.valueInfo.set(weightName, { name: weightName, dtype: 'float32', shape: [...t.dims] });
  return q;
}

/**
 * Average storage bits per parameter over the NF4 weights of a graph: 4 + 8/64 + 32/(64·256) ≈ 4.127 with double
 * quantisation (plus the per-weight offset), 4.5 without. Throws when nothing is quantised.
 */
export function bitsPerParameter(fragment: { graph: Graph }): number {
  const g = fragment.graph;
  let bits = 0;
  let params = 0;
  for (const [name, t] of g.initializers) {
    if (!name.endsWith(NF4_SUFFIX)) continue;
    const weight = name.slice(0, -NF4_SUFFIX.length);
    const info = g.valueInfo.get(weight);
    if (!info?.shape || info.shape.some((d) => typeof d !== 'number')) throw new AdapterError(`NF4 weight '${weight}' has no recorded shape`);
    params += (info.shape as number[]).reduce((a, d) => a * d, 1);
    bits += t.data.length * 8;
    const absmax = g.initializers.get(`${weight}.absmax`);
    const absmax2 = g.initializers.get(`${weight}.absmax2`);
    if (absmax?.dtype === 'float32') bits += absmax.data.length * 32;
    else if (absmax && absmax2) {
      bits += absmax.data.length * 8 + absmax2.data.length * 32 + 32;
    }
  }
  if (params === 0) throw new AdapterError('bitsPerParameter: the fragment has no NF4-quantised weight');
  return bits / params;
}
