// File-backed tensors: a weight whose values stay in their file until something reads `data`, and are not kept by
// the tensor afterwards. A real-size model's fragment can then hold all its initializers while the process holds
// only onnxruntime's copy of them: serialising a session reads, writes and drops one tensor at a time.

import { type DType, type Tensor, type TensorData, OnnxError, bytesPerElement, tensorSize } from './ir.js';

const READERS = new WeakMap<Tensor, () => TensorData>();

/** Writes a tensor's raw little-endian bytes in pieces (each piece may be reused once `write` returns). */
export type TensorStreamer = (write: (bytes: Uint8Array) => void) => void;
const STREAMERS = new WeakMap<Tensor, TensorStreamer>();

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
export function lazyTensor(dtype: DType, dims: readonly number[], read: () => TensorData, what = 'tensor', stream?: TensorStreamer): Tensor {
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
      STREAMERS.delete(t);
    },
  });
  READERS.set(t, load);
  if (stream) STREAMERS.set(t, stream);
  return t;
}

/**
 * Writes a tensor's raw bytes: a file-backed tensor with a streamer goes from its file in pieces (never whole in
 * memory: how sessions' external data is written), any other from its values.
 */
export function writeTensorBytes(t: Tensor, write: (bytes: Uint8Array) => void, what = 'tensor'): void {
  const stream = READERS.has(t) ? STREAMERS.get(t) : undefined;
  if (!stream) {
    const d = t.data;
    if (Array.isArray(d)) throw new OnnxError(`${what}: string tensors have no raw byte form`);
    write(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    return;
  }
  const want = tensorByteLength(t);
  let n = 0;
  stream((bytes) => {
    n += bytes.length;
    if (n > want) throw new OnnxError(`${what}: its file gave more than the ${want} bytes of shape [${t.dims.join(',')}]`);
    write(bytes);
  });
  if (n !== want) throw new OnnxError(`${what}: its file gave ${n} bytes, shape [${t.dims.join(',')}] needs ${want}`);
}

/** True while `t` reads its values from its file on access (not after `data` was assigned). */
export function isLazyTensor(t: Tensor): boolean {
  return READERS.has(t);
}

/** Bytes of a numeric tensor's values from its dtype and dims (0 for strings), without reading a file-backed one. */
export function tensorByteLength(t: Tensor): number {
  return t.dtype === 'string' ? 0 : tensorSize(t.dims) * bytesPerElement(t.dtype);
}
