// File-backed tensors: a weight whose values stay in their file until something reads `data`, and are not kept by
// the tensor afterwards. A real-size model's fragment can then hold all its initializers while the process holds
// only onnxruntime's copy of them: serialising a session reads, writes and drops one tensor at a time.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { type DType, type Tensor, type TensorData, OnnxError, allocData, bytesPerElement, float16BitsToFloat32, tensorSize } from './ir.js';
import { describeFsError, readExactly, readSafetensorsHeader } from './safetensors.js';

const READERS = new WeakMap<Tensor, () => TensorData>();

/**
 * The values read last, kept strongly but bounded: the most recent tensor always (so `t.data[i]` in a loop reads
 * the file once), older ones while the total stays under LAZY_CACHE_BYTES. (A WeakRef would not do: its target
 * lives until the current synchronous job ends, so serialising a model in one go would keep every tensor.)
 */
const recent: Array<{ tensor: Tensor; data: TensorData; bytes: number }> = [];
export const LAZY_CACHE_BYTES = 64 * 2 ** 20;

function remember(tensor: Tensor, data: TensorData): void {
  const bytes = Array.isArray(data) ? 0 : data.byteLength;
  recent.unshift({ tensor, data, bytes });
  let total = 0;
  for (let i = 0; i < recent.length; i++) {
    total += recent[i].bytes;
    if (i > 0 && total > LAZY_CACHE_BYTES) {
      recent.length = i;
      break;
    }
  }
}

function cached(tensor: Tensor): TensorData | undefined {
  const i = recent.findIndex((r) => r.tensor === tensor);
  if (i < 0) return undefined;
  const [hit] = recent.splice(i, 1);
  recent.unshift(hit);
  return hit.data;
}

function forget(tensor: Tensor): void {
  const i = recent.findIndex((r) => r.tensor === tensor);
  if (i >= 0) recent.splice(i, 1);
}

/** Drops the values kept for file-backed tensors (after a session has been built from them). */
export function releaseLazyValues(): void {
  recent.length = 0;
}

/**
 * A tensor of known dtype and dims whose `data` is `read()` on access and not kept by the tensor (only the last
 * few values read are, see `recent`). Assigning `data` makes it an ordinary tensor with those values.
 */
export function lazyTensor(dtype: DType, dims: readonly number[], read: () => TensorData, what = 'tensor'): Tensor {
  const size = tensorSize(dims);
  let assigned: TensorData | undefined;
  const load = (): TensorData => {
    const data = read();
    if (data.length !== size) throw new OnnxError(`${what}: read ${data.length} values, its shape [${dims.join(',')}] needs ${size}`);
    return data;
  };
  const t = { dtype, dims: [...dims] } as Tensor;
  Object.defineProperty(t, 'data', {
    enumerable: true,
    configurable: true,
    get(): TensorData {
      if (assigned) return assigned;
      const hit = cached(t);
      if (hit) return hit;
      const data = load();
      remember(t, data);
      return data;
    },
    set(v: TensorData) {
      assigned = v;
      forget(t);
      READERS.delete(t);
    },
  });
  READERS.set(t, load);
  return t;
}

/** True while `t` reads its values from its file on access (not after `data` was assigned). */
export function isLazyTensor(t: Tensor): boolean {
  return READERS.has(t);
}

/** Bytes of a numeric tensor's values from its dtype and dims (0 for strings), without reading a file-backed one. */
export function tensorByteLength(t: Tensor): number {
  return t.dtype === 'string' ? 0 : tensorSize(t.dims) * bytesPerElement(t.dtype);
}

/** Float dtypes a file-backed safetensors tensor is read as float32 from (what every builder computes in). */
const AS_FLOAT32: ReadonlySet<DType> = new Set(['float32', 'float16', 'bfloat16', 'float64']);

function toFloat32(dtype: DType, raw: TensorData): Float32Array {
  if (dtype === 'float32') return raw as Float32Array;
  if (dtype === 'float64') return Float32Array.from(raw as Float64Array);
  const bits = raw as Uint16Array;
  if (dtype === 'bfloat16') {
    const out = new Uint32Array(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
    return new Float32Array(out.buffer);
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = float16BitsToFloat32(bits[i]);
  return out;
}

/**
 * A safetensors file's tensors without loading it: the header is read and checked, the file hashed in chunks
 * (sha256, for the graph's check), and each float tensor is file-backed, read (as float32) by a positioned read
 * when its values are used. Other tensors (ints, bools) are read now. A file whose size changes afterwards is an
 * error naming it when a tensor is read.
 */
export function readSafetensorsLazily(path: string, fileName = path): { tensors: Map<string, Tensor>; metadata: Record<string, string>; sha256: string } {
  const header = readSafetensorsHeader(path, fileName);
  const open = () => {
    try {
      return openSync(path, 'r');
    } catch (e) {
      throw new OnnxError(`cannot read safetensors file '${fileName}': ${describeFsError(e)}`);
    }
  };
  const hash = createHash('sha256');
  const fd = open();
  try {
    const chunk = new Uint8Array(16 * 2 ** 20);
    for (let at = 0; at < header.fileSize; at += chunk.length) {
      const n = Math.min(chunk.length, header.fileSize - at);
      hash.update(readExactly(fd, at, n, fileName, chunk.subarray(0, n)));
    }
  } finally {
    closeSync(fd);
  }
  const readRaw = (dtype: DType, shape: number[], begin: number, end: number): TensorData => {
    const data = allocData(dtype, tensorSize(shape)) as Exclude<TensorData, string[]>;
    const f = open();
    try {
      const size = fstatSync(f).size;
      if (size !== header.fileSize) throw new OnnxError(`'${fileName}' changed since it was opened (${size} bytes, was ${header.fileSize}); run again`);
      readExactly(f, header.dataStart + begin, end - begin, fileName, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } finally {
      closeSync(f);
    }
    return data;
  };
  const tensors = new Map<string, Tensor>();
  for (const e of header.entries) {
    const what = `tensor '${e.name}' in '${fileName}'`;
    if (AS_FLOAT32.has(e.dtype) && e.end > e.begin) {
      tensors.set(e.name, lazyTensor('float32', e.shape, () => toFloat32(e.dtype, readRaw(e.dtype, e.shape, e.begin, e.end)), what));
    } else {
      tensors.set(e.name, { dtype: e.dtype, dims: [...e.shape], data: e.end > e.begin ? readRaw(e.dtype, e.shape, e.begin, e.end) : allocData(e.dtype, tensorSize(e.shape)) });
    }
  }
  return { tensors, metadata: header.metadata, sha256: hash.digest('hex') };
}
