// In-memory ONNX IR: the one representation every part of the engine reads, rewrites and writes.
// Values are referred to by name (as in ONNX); '' marks an omitted optional input.

export type DType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool'
  | 'string';

/** A dimension: a known size, a symbolic name (e.g. "batch_size"), or null when unknown. */
export type Dim = number | string | null;
/** A shape, or null when not even the rank is known. */
export type Shape = Dim[] | null;

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Shape;
}

export type TensorData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | string[];

export interface Tensor {
  dtype: DType;
  dims: number[];
  /** float16/bfloat16 are raw 16-bit patterns in a Uint16Array; bool is a Uint8Array of 0/1. */
  data: TensorData;
}

export type Attribute =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph'; value: Graph }
  | { type: 'graphs'; value: Graph[] };

export interface Node {
  name: string;
  opType: string;
  /** '' is the default ONNX domain. */
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attribute>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Intermediate value annotations (shape/type) carried by the file or added by inference. */
  valueInfo: Map<string, ValueInfo>;
}

export interface Model {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  /** domain → opset version; '' is ai.onnx. */
  opsets: Record<string, number>;
  graph: Graph;
  metadata: Record<string, string>;
}

/** ONNX TensorProto.DataType codes. */
export const DTYPE_CODES: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
};

export function dtypeCode(dtype: DType): number {
  return DTYPE_CODES[dtype];
}

export function dtypeFromCode(code: number, what: string): DType {
  for (const [d, c] of Object.entries(DTYPE_CODES)) if (c === code) return d as DType;
  throw new OnnxError(`${what}: unsupported ONNX element type ${code}`);
}

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['float32', 'float16', 'bfloat16', 'float64']);

export function isFloat(dtype: DType): boolean {
  return FLOAT_DTYPES.has(dtype);
}

export function emptyGraph(name = 'graph'): Graph {
  return { name, nodes: [], inputs: [], outputs: [], initializers: new Map(), valueInfo: new Map() };
}

export function newModel(graph: Graph, opset = 17, producerName = 'vlm-composer'): Model {
  return { irVersion: 8, producerName, producerVersion: '0.1.0', opsets: { '': opset }, graph, metadata: {} };
}

export function tensorSize(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Allocates a zero-filled typed array of the right kind for a dtype. */
export function allocData(dtype: DType, size: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'float16':
    case 'bfloat16':
    case 'uint16':
      return new Uint16Array(size);
    case 'int64':
      return new BigInt64Array(size);
    case 'uint64':
      return new BigUint64Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'uint32':
      return new Uint32Array(size);
    case 'int16':
      return new Int16Array(size);
    case 'int8':
      return new Int8Array(size);
    case 'uint8':
    case 'bool':
      return new Uint8Array(size);
    case 'string':
      return new Array<string>(size).fill('');
  }
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
    case 'uint64':
      return 8;
    case 'float32':
    case 'int32':
    case 'uint32':
      return 4;
    case 'float16':
    case 'bfloat16':
    case 'int16':
    case 'uint16':
      return 2;
    case 'int8':
    case 'uint8':
    case 'bool':
      return 1;
    case 'string':
      throw new Error('string tensors have no fixed element size');
  }
}

/** Tensor from plain numbers (ints become BigInt for int64). */
export function tensorFromNumbers(dtype: DType, dims: number[], values: ArrayLike<number>): Tensor {
  const data = allocData(dtype, values.length);
  if (tensorSize(dims) !== values.length) {
    throw new Error(`tensor of shape [${dims.join(',')}] needs ${tensorSize(dims)} values, got ${values.length}`);
  }
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < values.length; i++) data[i] = BigInt(Math.trunc(values[i]));
  } else if (dtype === 'float16') {
    const d = data as Uint16Array;
    for (let i = 0; i < values.length; i++) d[i] = float32ToFloat16Bits(values[i]);
  } else if (dtype === 'bfloat16') {
    const d = data as Uint16Array;
    for (let i = 0; i < values.length; i++) d[i] = float32ToBfloat16Bits(values[i]);
  } else if (Array.isArray(data)) {
    throw new Error('tensorFromNumbers cannot build string tensors');
  } else {
    (data as Float32Array).set(Array.from(values));
  }
  return { dtype, dims: [...dims], data };
}

/** Reads any numeric tensor as float64 numbers (int64 via Number, f16/bf16 decoded). */
export function tensorToNumbers(t: Tensor): Float64Array {
  const n = tensorSize(t.dims);
  const out = new Float64Array(n);
  const d = t.data;
  if (Array.isArray(d)) throw new Error('string tensors are not numeric');
  if (t.dtype === 'float16') {
    for (let i = 0; i < n; i++) out[i] = float16BitsToFloat32((d as Uint16Array)[i]);
  } else if (t.dtype === 'bfloat16') {
    for (let i = 0; i < n; i++) out[i] = bfloat16BitsToFloat32((d as Uint16Array)[i]);
  } else {
    for (let i = 0; i < n; i++) out[i] = Number(d[i]);
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float32ToBfloat16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return 0x7fc0; // NaN
  // Round to nearest even, as PyTorch does.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bfloat16BitsToFloat32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

export function float32ToFloat16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Thrown for anything wrong with a model file or graph; the message names the file, node or tensor. */
export class OnnxError extends Error {
  override name = 'OnnxError';
}

/** Producer map: value name → the node that writes it. */
export function producers(graph: Graph): Map<string, Node> {
  const m = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o) m.set(o, n);
  return m;
}

/** Consumer map: value name → nodes that read it. */
export function consumers(graph: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of graph.nodes)
    for (const i of n.inputs) {
      if (!i) continue;
      const list = m.get(i);
      if (list) list.push(n);
      else m.set(i, [n]);
    }
  return m;
}

/** Nodes in an order where every node follows the producers of its inputs. Throws on a cycle. */
export function topoSort(graph: Graph): Node[] {
  const prod = producers(graph);
  const state = new Map<Node, 1 | 2>();
  const order: Node[] = [];
  const visit = (root: Node) => {
    const stack: Array<[Node, number]> = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, idx] = top;
      if (idx === 0) {
        const s = state.get(node);
        if (s === 2) {
          stack.pop();
          continue;
        }
        state.set(node, 1);
      }
      if (idx < node.inputs.length) {
        top[1]++;
        const p = node.inputs[idx] ? prod.get(node.inputs[idx]) : undefined;
        if (p && p !== node) {
          const ps = state.get(p);
          if (ps === 1) throw new OnnxError(`graph has a cycle through node '${p.name}' (${p.opType})`);
          if (ps !== 2) stack.push([p, 0]);
        }
      } else {
        state.set(node, 2);
        order.push(node);
        stack.pop();
      }
    }
  };
  for (const n of graph.nodes) visit(n);
  return order;
}
