// Parse and serialise ONNX ModelProto (via onnx-proto) to and from the in-memory IR.
// External data is read from, and written to, files confined to the model's own folder.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import onnxProto from 'onnx-proto';
import { tensorByteLength, writeTensorBytes } from './lazy.js';
import type { onnx as OnnxNs } from 'onnx-proto';
import {
  type Attribute,
  type DType,
  type Graph,
  type Model,
  type Node,
  type Shape,
  type Tensor,
  type TensorData,
  type ValueInfo,
  OnnxError,
  allocData,
  dtypeCode,
  dtypeFromCode,
  bytesPerElement,
  tensorSize,
} from './ir.js';
import { writeFileAtomic } from './atomic.js';

const { onnx } = onnxProto as unknown as { onnx: typeof OnnxNs };
type Long = { toNumber(): number };

function num(v: number | Long | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export interface ParseOptions {
  /** Folder external data is resolved against (and confined to). Required when the model has external data. */
  baseDir?: string;
  /** For error messages. */
  fileName?: string;
}

/** Reads an ONNX file from disk, resolving external data beside it. */
export function loadModel(path: string): Model {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new OnnxError(`cannot read ONNX file '${path}': ${(e as Error).message}`);
  }
  return parseModel(bytes, { baseDir: dirname(resolve(path)), fileName: path });
}

export function parseModel(bytes: Uint8Array, opts: ParseOptions = {}): Model {
  const file = opts.fileName ?? 'model';
  let proto: OnnxNs.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new OnnxError(`'${file}' is not a valid ONNX model: ${(e as Error).message}`);
  }
  if (!proto.graph) throw new OnnxError(`'${file}' is not a valid ONNX model: it has no graph`);
  const opsets: Record<string, number> = {};
  for (const o of proto.opsetImport ?? []) opsets[o.domain ?? ''] = num(o.version);
  if (opsets[''] === undefined && Object.keys(opsets).length === 0) {
    throw new OnnxError(`'${file}' is not a valid ONNX model: it imports no opset`);
  }
  const metadata: Record<string, string> = {};
  for (const p of proto.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  const ctx: Ctx = { file, baseDir: opts.baseDir };
  return {
    irVersion: num(proto.irVersion),
    producerName: proto.producerName ?? '',
    producerVersion: proto.producerVersion ?? '',
    opsets,
    graph: graphFromProto(proto.graph, ctx),
    metadata,
  };
}

interface Ctx {
  file: string;
  baseDir?: string;
}

function graphFromProto(g: OnnxNs.IGraphProto, ctx: Ctx): Graph {
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', tensorFromProto(t, ctx));
  const valueInfo = new Map<string, ValueInfo>();
  for (const v of g.valueInfo ?? []) {
    const vi = valueInfoFromProto(v);
    if (vi) valueInfo.set(vi.name, vi);
  }
  const inputs: ValueInfo[] = [];
  for (const v of g.input ?? []) {
    // Old exporters list initializers among inputs too; the IR keeps them only as initializers.
    if (initializers.has(v.name ?? '')) continue;
    const vi = valueInfoFromProto(v);
    if (!vi) throw new OnnxError(`'${ctx.file}': graph input '${v.name}' is not a tensor`);
    inputs.push(vi);
  }
  const outputs: ValueInfo[] = [];
  for (const v of g.output ?? []) {
    const vi = valueInfoFromProto(v) ?? { name: v.name ?? '', dtype: 'float32' as DType, shape: null };
    outputs.push(vi);
  }
  const nodes: Node[] = (g.node ?? []).map((n, i) => nodeFromProto(n, i, ctx));
  return { name: g.name ?? 'graph', nodes, inputs, outputs, initializers, valueInfo };
}

function nodeFromProto(n: OnnxNs.INodeProto, index: number, ctx: Ctx): Node {
  const name = n.name || `${n.opType}_${index}`;
  const attrs: Record<string, Attribute> = {};
  for (const a of n.attribute ?? []) {
    attrs[a.name ?? ''] = attrFromProto(a, name, ctx);
  }
  return {
    name,
    opType: n.opType ?? '',
    domain: n.domain ?? '',
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attrs,
  };
}

const utf8 = new TextDecoder();
const utf8enc = new TextEncoder();

function attrFromProto(a: OnnxNs.IAttributeProto, nodeName: string, ctx: Ctx): Attribute {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case T.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case T.INT:
      return { type: 'int', value: num(a.i) };
    case T.STRING:
      return { type: 'string', value: utf8.decode(a.s ?? new Uint8Array()) };
    case T.TENSOR:
      return { type: 'tensor', value: tensorFromProto(a.t ?? {}, ctx) };
    case T.GRAPH:
      return { type: 'graph', value: graphFromProto(a.g ?? {}, ctx) };
    case T.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case T.INTS:
      return { type: 'ints', value: (a.ints ?? []).map(num) };
    case T.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => utf8.decode(s)) };
    case T.GRAPHS:
      return { type: 'graphs', value: (a.graphs ?? []).map((g) => graphFromProto(g, ctx)) };
    default:
      throw new OnnxError(`'${ctx.file}': node '${nodeName}' attribute '${a.name}' has unsupported type ${a.type}`);
  }
}

function valueInfoFromProto(v: OnnxNs.IValueInfoProto): ValueInfo | null {
  const tt = v.type?.tensorType;
  if (!tt) return null;
  let dtype: DType;
  try {
    dtype = dtypeFromCode(tt.elemType ?? 0, v.name ?? '');
  } catch {
    return null;
  }
  let shape: Shape = null;
  if (tt.shape) {
    shape = (tt.shape.dim ?? []).map((d) => {
      if (d.dimParam) return d.dimParam;
      if (d.dimValue !== null && d.dimValue !== undefined) {
        const n = num(d.dimValue);
        return n > 0 || (n === 0 && d.dimValue !== undefined) ? n : null;
      }
      return null;
    });
  }
  return { name: v.name ?? '', dtype, shape };
}

function tensorFromProto(t: OnnxNs.ITensorProto, ctx: Ctx): Tensor {
  const name = t.name ?? '';
  const dtype = dtypeFromCode(t.dataType ?? 0, `'${ctx.file}': tensor '${name}'`);
  const dims = (t.dims ?? []).map(num);
  const size = tensorSize(dims);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    return { dtype, dims, data: readExternal(t, dtype, size, ctx) };
  }
  if (dtype === 'string') {
    return { dtype, dims, data: (t.stringData ?? []).map((s) => utf8.decode(s)) };
  }
  if (t.rawData && t.rawData.length > 0) {
    return { dtype, dims, data: fromRawBytes(t.rawData, dtype, size, `'${ctx.file}': tensor '${name}'`) };
  }
  const data = allocData(dtype, size);
  const src: ArrayLike<number | Long> =
    dtype === 'float32'
      ? (t.floatData ?? [])
      : dtype === 'float64'
        ? (t.doubleData ?? [])
        : dtype === 'int64'
          ? (t.int64Data ?? [])
          : dtype === 'uint64' || dtype === 'uint32'
            ? (t.uint64Data ?? [])
            : (t.int32Data ?? []);
  if (src.length !== size && !(size === 0 && src.length === 0)) {
    throw new OnnxError(`'${ctx.file}': tensor '${name}' of shape [${dims}] holds ${src.length} values, expected ${size}`);
  }
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < size; i++) {
      const v = src[i];
      data[i] = typeof v === 'number' ? BigInt(v) : BigInt((v as { toString(): string }).toString());
    }
  } else {
    const d = data as Float32Array;
    for (let i = 0; i < size; i++) d[i] = num(src[i]);
  }
  return { dtype, dims, data };
}

/** Copies raw little-endian bytes into a typed array of the dtype (copy keeps alignment and ownership simple). */
export function fromRawBytes(bytes: Uint8Array, dtype: DType, size: number, what: string): TensorData {
  const bpe = bytesPerElement(dtype);
  if (bytes.length !== size * bpe) {
    throw new OnnxError(`${what}: holds ${bytes.length} bytes, expected ${size * bpe} for ${size} ${dtype} values`);
  }
  const data = allocData(dtype, size) as Exclude<TensorData, string[]>;
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes);
  return data;
}

export function toRawBytes(data: TensorData): Uint8Array {
  if (Array.isArray(data)) throw new OnnxError('string tensors have no raw byte form');
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Resolves an external-data location and refuses anything outside the model's folder. */
export function confinedPath(baseDir: string, location: string, what: string): string {
  if (!location) throw new OnnxError(`${what}: external data has no location`);
  if (isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location)) {
    throw new OnnxError(`${what}: external data location '${location}' is an absolute path; it must stay inside the model's folder`);
  }
  const base = resolve(baseDir);
  const full = resolve(base, location);
  const rel = relative(base, full);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..')) {
    throw new OnnxError(`${what}: external data location '${location}' escapes the model's folder`);
  }
  return full;
}

function readExternal(t: OnnxNs.ITensorProto, dtype: DType, size: number, ctx: Ctx): TensorData {
  const what = `'${ctx.file}': tensor '${t.name}'`;
  const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location') ?? '';
  if (ctx.baseDir === undefined) throw new OnnxError(`${what}: uses external data but the model was not loaded from a file`);
  const path = confinedPath(ctx.baseDir, location, what);
  const offset = Number(entries.get('offset') ?? '0');
  const bpe = dtype === 'string' ? 0 : bytesPerElement(dtype);
  const length = entries.has('length') ? Number(entries.get('length')) : size * bpe;
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch (e) {
    throw new OnnxError(`${what}: cannot read external data file '${location}': ${(e as Error).message}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > file.length) {
    throw new OnnxError(`${what}: external data range ${offset}+${length} lies outside '${location}' (${file.length} bytes)`);
  }
  return fromRawBytes(file.subarray(offset, offset + length), dtype, size, what);
}

// ---------------------------------------------------------------------------------------------------------------
// Serialisation

export interface SerializeOptions {
  /**
   * Write initializers of at least this many bytes to an external data file. The caller writes `externalData`
   * beside the model under `externalDataName`.
   */
  externalDataName?: string;
  externalThreshold?: number;
}

export interface Serialized {
  model: Uint8Array;
  externalData?: Uint8Array;
}

export function serializeModel(model: Model, opts: SerializeOptions = {}): Serialized {
  const chunks: Uint8Array[] = [];
  const ext: ExternalWriter | undefined = opts.externalDataName
    ? { name: opts.externalDataName, threshold: opts.externalThreshold ?? 1024, offset: 0, write: (bytes) => chunks.push(bytes.slice()) }
    : undefined;
  const bytes = encodeModel(model, ext);
  if (!ext || chunks.length === 0) return { model: bytes };
  const all = new Uint8Array(ext.offset);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return { model: bytes, externalData: all };
}

function encodeModel(model: Model, ext: ExternalWriter | undefined): Uint8Array {
  const proto = onnx.ModelProto.create({
    irVersion: model.irVersion,
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    opsetImport: Object.entries(model.opsets).map(([domain, version]) => ({ domain, version })),
    graph: graphToProto(model.graph, ext),
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(proto).finish();
}

/**
 * Writes a model (and its external data file, when asked) atomically. External data streams tensor by tensor from
 * the tensors' own buffers into the file, so a model of many gigabytes is never held twice (nor as one buffer, which
 * Node caps at 4 GiB).
 */
export function saveModel(path: string, model: Model, opts: SerializeOptions = {}): void {
  if (!opts.externalDataName) {
    writeFileAtomic(path, serializeModel(model).model);
    return;
  }
  const extPath = confinedPath(dirname(resolve(path)), opts.externalDataName, `'${path}'`);
  mkdirSync(dirname(extPath), { recursive: true });
  const tmp = `${extPath}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w');
  let wrote = false;
  try {
    const ext: ExternalWriter = {
      name: opts.externalDataName,
      threshold: opts.externalThreshold ?? 1024,
      offset: 0,
      write: (bytes) => {
        wrote = true;
        for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 30));
      },
    };
    const bytes = encodeModel(model, ext);
    fsyncSync(fd);
    closeSync(fd);
    if (wrote) renameSync(tmp, extPath);
    else rmSync(tmp, { force: true });
    writeFileAtomic(path, bytes);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

interface ExternalWriter {
  name: string;
  threshold: number;
  offset: number;
  /** Appends bytes to the external data (at `offset`, which the caller advances). */
  write(bytes: Uint8Array): void;
}

function graphToProto(g: Graph, ext?: ExternalWriter): OnnxNs.IGraphProto {
  const vi = (v: ValueInfo): OnnxNs.IValueInfoProto => ({
    name: v.name,
    type: {
      tensorType: {
        elemType: dtypeCode(v.dtype),
        shape: v.shape
          ? { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : d ? { dimParam: d } : {})) }
          : undefined,
      },
    },
  });
  return {
    name: g.name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      input: n.inputs,
      output: n.outputs,
      attribute: Object.entries(n.attrs).map(([name, a]) => attrToProto(name, a, ext)),
    })),
    input: g.inputs.map(vi),
    output: g.outputs.map(vi),
    initializer: [...g.initializers].map(([name, t]) => tensorToProto(name, t, ext)),
    valueInfo: [...g.valueInfo.values()].map(vi),
  };
}

function attrToProto(name: string, a: Attribute, ext?: ExternalWriter): OnnxNs.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'string':
      return { name, type: T.STRING, s: utf8enc.encode(a.value) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorToProto('', a.value) };
    case 'graph':
      return { name, type: T.GRAPH, g: graphToProto(a.value, ext) };
    case 'floats':
      return { name, type: T.FLOATS, floats: a.value };
    case 'ints':
      return { name, type: T.INTS, ints: a.value };
    case 'strings':
      return { name, type: T.STRINGS, strings: a.value.map((s) => utf8enc.encode(s)) };
    case 'graphs':
      return { name, type: T.GRAPHS, graphs: a.value.map((g) => graphToProto(g, ext)) };
  }
}

export function tensorToProto(name: string, t: Tensor, ext?: ExternalWriter): OnnxNs.ITensorProto {
  const base: OnnxNs.ITensorProto = { name, dims: t.dims, dataType: dtypeCode(t.dtype) };
  if (t.dtype === 'string') return { ...base, stringData: (t.data as string[]).map((s) => utf8enc.encode(s)) };
  const length = tensorByteLength(t);
  if (ext && length >= ext.threshold) {
    // Keep each tensor 64-byte aligned in the external file, as the ONNX tooling does.
    const pad = (64 - (ext.offset % 64)) % 64;
    if (pad) {
      ext.write(new Uint8Array(pad));
      ext.offset += pad;
    }
    const entry = [
      { key: 'location', value: ext.name },
      { key: 'offset', value: String(ext.offset) },
      { key: 'length', value: String(length) },
    ];
    // A file-backed weight streams from its file in pieces (onnx/lazy.ts); others write their values.
    writeTensorBytes(t, (bytes) => ext.write(bytes), name ? `initializer '${name}'` : 'tensor');
    ext.offset += length;
    return { ...base, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: entry };
  }
  return { ...base, rawData: toRawBytes(t.data) };
}

