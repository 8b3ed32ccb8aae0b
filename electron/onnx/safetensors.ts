// safetensors read/write: 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
// The header is untrusted input: every length and offset is checked before any byte is read.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { type DType, type Tensor, OnnxError, bytesPerElement, tensorSize } from './ir.js';
import { fromRawBytes, toRawBytes } from './proto.js';
import { writeFileAtomic } from './atomic.js';

/** Headers larger than this are refused (the reference implementation uses the same bound). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const ST_TO_DTYPE: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U64: 'uint64',
  U32: 'uint32',
  U16: 'uint16',
  U8: 'uint8',
  BOOL: 'bool',
};

const DTYPE_TO_ST: Partial<Record<DType, string>> = Object.fromEntries(
  Object.entries(ST_TO_DTYPE).map(([st, d]) => [d, st]),
);

export interface Safetensors {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

const entrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});
const metadataSchema = z.record(z.string(), z.string());

export function readSafetensors(path: string): Safetensors {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new OnnxError(`cannot read safetensors file '${path}': ${(e as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

export function parseSafetensors(bytes: Uint8Array, fileName = 'safetensors'): Safetensors {
  const bad = (why: string) => new OnnxError(`'${fileName}' is not a valid safetensors file: ${why}`);
  if (bytes.length < 8) throw bad(`it is ${bytes.length} bytes long, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(headerLen);
  if (8 + n > bytes.length) throw bad(`header length ${n} runs past the end of the file (${bytes.length} bytes)`);
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw bad('header is not valid UTF-8');
  }
  if (!headerText.startsWith('{')) throw bad('header does not start with a JSON object');
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    throw bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');

  const data = bytes.subarray(8 + n);
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number }> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      const m = metadataSchema.safeParse(raw);
      if (!m.success) throw bad('__metadata__ must map strings to strings');
      metadata = m.data;
      continue;
    }
    const what = `tensor '${name}' in '${fileName}'`;
    const parsed = entrySchema.safeParse(raw);
    if (!parsed.success) {
      throw new OnnxError(`${what}: malformed header entry (${parsed.error.issues.map((i) => `${i.path.join('.') || 'entry'}: ${i.message}`).join('; ')})`);
    }
    const e = parsed.data;
    const dtype = ST_TO_DTYPE[e.dtype];
    if (!dtype) throw new OnnxError(`${what}: unsupported dtype '${e.dtype}'`);
    const [begin, end] = e.data_offsets;
    if (begin > end) throw new OnnxError(`${what}: data_offsets [${begin}, ${end}] are reversed`);
    if (end > data.length) {
      throw new OnnxError(`${what}: data_offsets [${begin}, ${end}] lie outside the ${data.length}-byte data section`);
    }
    const size = tensorSize(e.shape);
    const expected = size * bytesPerElement(dtype);
    if (!Number.isSafeInteger(expected) || end - begin !== expected) {
      throw new OnnxError(`${what}: holds ${end - begin} bytes but shape [${e.shape.join(',')}] of ${e.dtype} needs ${expected}`);
    }
    spans.push({ name, begin, end });
    tensors.set(name, { dtype, dims: [...e.shape], data: fromRawBytes(data.subarray(begin, end), dtype, size, what) });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1];
    const cur = spans[i];
    // Zero-length tensors occupy no bytes and cannot overlap anything.
    if (cur.begin < prev.end && cur.end > cur.begin) {
      throw bad(`tensors '${prev.name}' [${prev.begin}, ${prev.end}] and '${cur.name}' [${cur.begin}, ${cur.end}] overlap`);
    }
  }
  return { tensors, metadata };
}

/**
 * Serialises tensors the way the reference writer does: tensors ordered by element size (largest first) then name,
 * so every tensor is aligned to its element size, and the header padded with spaces to a multiple of 8 bytes.
 */
export function serializeSafetensors(
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const prepared = entries.map(([name, t]) => {
    if (name === '__metadata__') throw new OnnxError(`tensor name '__metadata__' is reserved in safetensors`);
    const st = DTYPE_TO_ST[t.dtype];
    if (!st) throw new OnnxError(`tensor '${name}': dtype ${t.dtype} cannot be stored in safetensors`);
    if (tensorSize(t.dims) !== t.data.length) {
      throw new OnnxError(`tensor '${name}': shape [${t.dims.join(',')}] needs ${tensorSize(t.dims)} values, has ${t.data.length}`);
    }
    return { name, st, dims: t.dims, bytes: toRawBytes(t.data), bpe: bytesPerElement(t.dtype) };
  });
  prepared.sort((a, b) => b.bpe - a.bpe || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadataSchema.parse(metadata);
  let offset = 0;
  for (const p of prepared) {
    header[p.name] = { dtype: p.st, shape: p.dims, data_offsets: [offset, offset + p.bytes.length] };
    offset += p.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const p of prepared) {
    out.set(p.bytes, at);
    at += p.bytes.length;
  }
  return out;
}

/** Writes a safetensors file atomically (temp file + rename). */
export function writeSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
