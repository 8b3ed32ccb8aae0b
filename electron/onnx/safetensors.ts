// safetensors read/write: 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
// The header is untrusted input: every length and offset is checked before any byte is read.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { z } from 'zod';
import { type DType, type Tensor, type TensorData, OnnxError, allocData, bytesPerElement, float16BitsToFloat32, tensorSize } from './ir.js';
import { lazyTensor } from './lazy.js';
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
  const bad = invalidFile(fileName);
  if (bytes.length < 8) throw bad(`it is ${bytes.length} bytes long, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = checkHeaderLength(view.getBigUint64(0, true), bytes.length, bad);
  const data = bytes.subarray(8 + n);
  const { entries, metadata } = parseHeaderJson(bytes.subarray(8, 8 + n), data.length, fileName);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    const what = `tensor '${e.name}' in '${fileName}'`;
    tensors.set(e.name, { dtype: e.dtype, dims: [...e.shape], data: fromRawBytes(data.subarray(e.begin, e.end), e.dtype, tensorSize(e.shape), what) });
  }
  return { tensors, metadata };
}

/** One tensor as the header describes it; offsets are relative to the start of the data section. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  /** The dtype code as written in the file (`F32`, `BF16`, …), for messages. */
  storedDtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In header order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** The 8-byte length prefix and the JSON header exactly as stored (for fingerprints). */
  headerBytes: Uint8Array;
  /** Absolute file offset of the data section: tensor bytes live at `dataStart + begin … dataStart + end`. */
  dataStart: number;
  fileSize: number;
}

/**
 * Reads and validates only the header of a safetensors file (a bounded read: at most 8 + MAX_HEADER_BYTES bytes),
 * with the same checks as parseSafetensors against the file's real size, so multi-GB files are never loaded whole.
 * `fileName` is how messages name the file (defaults to the path).
 */
export function readSafetensorsHeader(path: string, fileName = path): SafetensorsHeader {
  const bad = invalidFile(fileName);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new OnnxError(`cannot read safetensors file '${fileName}': ${describeFsError(e)}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw bad('it is not a regular file');
    const fileSize = stat.size;
    const prefix = readExactly(fd, 0, Math.min(8, fileSize), fileName);
    if (fileSize < 8) throw bad(foreignFormat(prefix) ?? `it is ${fileSize} bytes long, shorter than the 8-byte header length`);
    const declared = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    let n: number;
    try {
      n = checkHeaderLength(declared, fileSize, bad);
    } catch (e) {
      // A length that cannot be right usually means the file is something else under a .safetensors name.
      const foreign = foreignFormat(prefix);
      throw foreign ? bad(foreign) : e;
    }
    const headerBytes = new Uint8Array(8 + n);
    headerBytes.set(prefix, 0);
    headerBytes.set(readExactly(fd, 8, n, fileName), 8);
    const foreign = headerBytes[8] === 0x7b ? undefined : foreignFormat(prefix);
    if (foreign) throw bad(foreign); // e.g. a zip whose first bytes happen to read as a plausible length
    const { entries, metadata } = parseHeaderJson(headerBytes.subarray(8), fileSize - 8 - n, fileName);
    return { entries, metadata, headerBytes, dataStart: 8 + n, fileSize };
  } finally {
    closeSync(fd);
  }
}

function invalidFile(fileName: string): (why: string) => OnnxError {
  return (why) => new OnnxError(`'${fileName}' is not a valid safetensors file: ${why}`);
}

/** Checks the declared header length against the limit and the file size; returns it as a number. */
function checkHeaderLength(headerLen: bigint, fileSize: number, bad: (why: string) => OnnxError): number {
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(headerLen);
  if (8 + n > fileSize) throw bad(`header length ${n} runs past the end of the file (${fileSize} bytes)`);
  return n;
}

/** Validates the JSON header against a data section of `dataLength` bytes: dtypes, sizes, bounds and overlaps. */
function parseHeaderJson(
  jsonBytes: Uint8Array,
  dataLength: number,
  fileName: string,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  const bad = invalidFile(fileName);
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(jsonBytes);
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

  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
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
    if (end > dataLength) {
      throw new OnnxError(`${what}: data_offsets [${begin}, ${end}] lie outside the ${dataLength}-byte data section`);
    }
    const expected = tensorSize(e.shape) * bytesPerElement(dtype);
    if (!Number.isSafeInteger(expected) || end - begin !== expected) {
      throw new OnnxError(`${what}: holds ${end - begin} bytes but shape [${e.shape.join(',')}] of ${e.dtype} needs ${expected}`);
    }
    entries.push({ name, dtype, storedDtype: e.dtype, shape: [...e.shape], begin, end });
  }
  const spans = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1];
    const cur = spans[i];
    // Zero-length tensors occupy no bytes and cannot overlap anything.
    if (cur.begin < prev.end && cur.end > cur.begin) {
      throw bad(`tensors '${prev.name}' [${prev.begin}, ${prev.end}] and '${cur.name}' [${cur.begin}, ${cur.end}] overlap`);
    }
  }
  return { entries, metadata };
}

/** Names the format of a file that is plainly not safetensors, from its first bytes. */
function foreignFormat(prefix: Uint8Array): string | undefined {
  const ascii = String.fromCharCode(...prefix);
  if (ascii.startsWith('PK\x03\x04')) return "it is a zip archive (PyTorch's torch.save format), not safetensors";
  if (prefix[0] === 0x80 && prefix.length > 1 && prefix[1] >= 2 && prefix[1] <= 5) return 'it is a Python pickle, not safetensors';
  if (ascii.startsWith('\x89HDF')) return 'it is an HDF5 file (Keras/TensorFlow weights), not safetensors';
  if (ascii.startsWith('version ')) return 'it looks like a Git LFS pointer, not the weights themselves (fetch them with `git lfs pull`)';
  if (prefix.length > 0 && /^[\t\n\r\x20-\x7e]+$/.test(ascii)) return 'it is a text file, not safetensors';
  return undefined;
}

/** Positioned read of exactly `length` bytes (looping over short reads); a short file is an error naming it. */
export function readExactly(fd: number, position: number, length: number, fileName: string, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(length);
  let done = 0;
  while (done < length) {
    // Chunks stay far below the 2 GiB a single read may return.
    const chunk = Math.min(length - done, 1 << 30);
    let got: number;
    try {
      got = readSync(fd, out, done, chunk, position + done);
    } catch (e) {
      throw new OnnxError(`cannot read '${fileName}': ${describeFsError(e)}`);
    }
    if (got === 0) throw new OnnxError(`'${fileName}' ended after ${position + done} bytes, before the ${position + length} it should hold`);
    done += got;
  }
  return out;
}

/** An fs error as one line without the absolute path or stack ("ENOENT: no such file or directory"). */
export function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string') {
    const known: Record<string, string> = {
      ENOENT: 'no such file',
      EACCES: 'permission denied',
      EPERM: 'operation not permitted',
      EISDIR: 'it is a folder',
      ENOTDIR: 'a part of the path is not a folder',
      ELOOP: 'too many symbolic links',
      EMFILE: 'too many open files',
    };
    return `${err.code}: ${known[err.code] ?? 'cannot be read'}`;
  }
  return err instanceof Error ? err.message : String(e);
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

// ---------------------------------------------------------------- file-backed reading

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

/** Bytes of stored data converted per piece when streaming as float32 (see streamAsFloat32). */
const STREAM_CHUNK_BYTES = 8 * 2 ** 20;

/**
 * Streams `length` bytes of `dtype` values at `position` of an open file as float32 bytes, one piece at a time
 * through one reused buffer: F32 as stored, BF16/F16/F64 converted exactly. How file-backed weights become a
 * session's external data without ever being whole in memory.
 */
export function streamAsFloat32(fd: number, position: number, length: number, dtype: DType, fileName: string, write: (bytes: Uint8Array) => void): void {
  const bpe = bytesPerElement(dtype);
  const step = Math.max(bpe, STREAM_CHUNK_BYTES - (STREAM_CHUNK_BYTES % bpe));
  const raw = new Uint8Array(Math.min(step, length));
  const out = dtype === 'float32' ? undefined : new Float32Array(raw.length / bpe);
  for (let at = 0; at < length; at += step) {
    const n = Math.min(step, length - at);
    const piece = readExactly(fd, position + at, n, fileName, raw.subarray(0, n));
    if (!out) {
      write(piece);
      continue;
    }
    const count = n / bpe;
    const src = dtype === 'float64' ? new Float64Array(raw.buffer, 0, count) : new Uint16Array(raw.buffer, 0, count);
    const dst = out.subarray(0, count);
    if (dtype === 'float64') dst.set(src);
    else if (dtype === 'bfloat16') {
      const bits = new Uint32Array(out.buffer, 0, count);
      for (let i = 0; i < count; i++) bits[i] = src[i] << 16;
    } else if (dtype === 'float16') for (let i = 0; i < count; i++) dst[i] = float16BitsToFloat32(src[i]);
    else throw new OnnxError(`'${fileName}': ${dtype} values cannot be streamed as float32`);
    write(new Uint8Array(out.buffer, 0, count * 4));
  }
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
  const withFile = <T>(use: (fd: number) => T): T => {
    const f = open();
    try {
      const size = fstatSync(f).size;
      if (size !== header.fileSize) throw new OnnxError(`'${fileName}' changed since it was opened (${size} bytes, was ${header.fileSize}); run again`);
      return use(f);
    } finally {
      closeSync(f);
    }
  };
  const readRaw = (dtype: DType, shape: number[], begin: number, end: number): TensorData => {
    const data = allocData(dtype, tensorSize(shape)) as Exclude<TensorData, string[]>;
    withFile((f) => readExactly(f, header.dataStart + begin, end - begin, fileName, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
    return data;
  };
  const tensors = new Map<string, Tensor>();
  for (const e of header.entries) {
    const what = `tensor '${e.name}' in '${fileName}'`;
    if (AS_FLOAT32.has(e.dtype) && e.end > e.begin) {
      tensors.set(
        e.name,
        lazyTensor('float32', e.shape, () => toFloat32(e.dtype, readRaw(e.dtype, e.shape, e.begin, e.end)), what, (write) =>
          withFile((f) => streamAsFloat32(f, header.dataStart + e.begin, e.end - e.begin, e.dtype, fileName, write)),
        ),
      );
    } else {
      tensors.set(e.name, { dtype: e.dtype, dims: [...e.shape], data: e.end > e.begin ? readRaw(e.dtype, e.shape, e.begin, e.end) : allocData(e.dtype, tensorSize(e.shape)) });
    }
  }
  return { tensors, metadata: header.metadata, sha256: hash.digest('hex') };
}
