// Bridge between the IR and onnxruntime-node: sessions from IR models, IR tensors in and out.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { type DType, type Model, type Tensor, OnnxError, tensorSize } from './ir.js';
import { releaseLazyValues, tensorByteLength } from './lazy.js';
import { saveModel, serializeModel } from './proto.js';

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  int16: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  uint16: 'uint16',
  uint32: 'uint32',
  uint64: 'uint64',
  bool: 'bool',
  string: 'string',
};

export function toOrtTensor(t: Tensor, what = 'tensor'): ort.Tensor {
  const type = ORT_TYPE[t.dtype];
  if (!type) throw new OnnxError(`${what}: dtype ${t.dtype} cannot be fed to onnxruntime`);
  if (tensorSize(t.dims) !== t.data.length) {
    throw new OnnxError(`${what}: shape [${t.dims}] needs ${tensorSize(t.dims)} values, has ${t.data.length}`);
  }
  return new ort.Tensor(type, t.data as ort.Tensor.DataType, t.dims);
}

export function fromOrtTensor(t: ort.Tensor): Tensor {
  const dtype = (Object.entries(ORT_TYPE).find(([, v]) => v === t.type)?.[0] ?? 'float32') as DType;
  const data = t.data as Tensor['data'];
  return { dtype, dims: [...t.dims], data: dtype === 'bool' ? Uint8Array.from(data as Uint8Array) : data };
}

export type ExecutionProvider = 'cpu' | 'cuda' | 'dml' | 'coreml';

/** Accelerated providers, best first; the CPU is always the fallback. */
export const ACCELERATED_PROVIDERS: readonly ExecutionProvider[] = ['cuda', 'dml', 'coreml'];

let detected: Promise<ExecutionProvider[]> | null = null;

/**
 * Providers that actually work on this machine, best first, ending with 'cpu'. A provider the binary lists is tried
 * with a one-op session on that provider alone: listing CUDA does not mean a GPU and its libraries are present.
 */
export function detectExecutionProviders(): Promise<ExecutionProvider[]> {
  detected ??= (async () => {
    const listed = new Set(ort.listSupportedBackends().map((b) => b.name));
    const working: ExecutionProvider[] = [];
    const probe = identityModelBytes();
    for (const ep of ACCELERATED_PROVIDERS) {
      if (!listed.has(ep) || !providerLibraryPresent(ep)) continue;
      try {
        const s = await ort.InferenceSession.create(probe, { executionProviders: [ep], logSeverityLevel: 4 });
        await s.release();
        working.push(ep);
      } catch {
        // Not usable here (no device or no runtime libraries): fall through to the next one.
      }
    }
    return [...working, 'cpu'];
  })();
  return detected;
}

/**
 * CUDA ships as separate provider libraries next to the binding (installed only with the CUDA build); without them a
 * probe would only print onnxruntime's load error, so it is skipped. DML and CoreML are built into their platforms'
 * binaries.
 */
function providerLibraryPresent(ep: ExecutionProvider): boolean {
  if (ep !== 'cuda') return true;
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    const dir = join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return existsSync(join(dir, lib));
  } catch {
    return false;
  }
}

function identityModelBytes(): Uint8Array {
  return serializeModel({
    irVersion: 8,
    producerName: 'vlm-composer',
    producerVersion: '0.1.0',
    opsets: { '': 17 },
    metadata: {},
    graph: {
      name: 'probe',
      nodes: [{ name: 'id', opType: 'Identity', domain: '', inputs: ['x'], outputs: ['y'], attrs: {} }],
      inputs: [{ name: 'x', dtype: 'float32', shape: [1] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [1] }],
      initializers: new Map(),
      valueInfo: new Map(),
    },
  }).model;
}

export interface SessionOptions {
  executionProviders?: ExecutionProvider[];
  /** Turn graph optimisations off (useful when comparing numerics op by op). */
  optimize?: boolean;
  intraOpThreads?: number;
  /** Weights above this many bytes go to onnxruntime as external data (default EXTERNAL_SESSION_BYTES). */
  externalDataBytes?: number;
  /**
   * false: onnxruntime computes with constant weights as they are instead of packing a copy for each kernel that
   * reads them. A train step reads every frozen weight twice (the forward MatMul and the backward Gemm with transB),
   * and packed, that is two copies of a real-size model; unpacked it is one, and a 1.1B LoRA step was faster too.
   */
  prepack?: boolean;
}

/**
 * Models whose weights exceed this are handed to onnxruntime as a file with external data: protobuf caps one
 * serialised model at 2 GiB, a real decoder (a 1B LLM is 4+ GiB in float32) is far larger, and an in-memory model
 * is held twice while onnxruntime loads it (the serialised bytes beside its own copy). Through the file, with
 * file-backed weights (onnx/lazy.ts), the process holds little more than onnxruntime's copy.
 */
export const EXTERNAL_SESSION_BYTES = 64 * 2 ** 20;

/** From dtypes and dims: file-backed weights (onnx/lazy.ts) are not read to be counted. */
function initializerBytes(model: Model): number {
  let n = 0;
  for (const t of model.graph.initializers.values()) n += tensorByteLength(t);
  return n;
}

export async function createSession(model: Model | Uint8Array, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  if (!(model instanceof Uint8Array) && initializerBytes(model) > (opts.externalDataBytes ?? EXTERNAL_SESSION_BYTES)) {
    // Written tensor by tensor to a private temp folder (each file-backed weight read, written and dropped), loaded
    // from the path, then removed: onnxruntime has copied the weights into its own memory by then.
    const dir = mkdtempSync(join(tmpdir(), 'composer-session-'));
    try {
      const path = join(dir, 'model.onnx');
      saveModel(path, model, { externalDataName: 'model.onnx.data', externalThreshold: 1024 });
      releaseLazyValues();
      return await createSessionFrom(path, opts);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (model instanceof Uint8Array) return createSessionFrom(model, opts);
  const bytes = serializeModel(model).model;
  releaseLazyValues();
  return createSessionFrom(bytes, opts);
}

async function createSessionFrom(source: Uint8Array | string, opts: SessionOptions): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: opts.executionProviders ?? ['cpu'],
    graphOptimizationLevel: opts.optimize === false ? 'disabled' : 'all',
    // onnxruntime-node rejects an explicit undefined here, so only pass it when set.
    ...(opts.intraOpThreads !== undefined ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    logSeverityLevel: 3,
    // Spinning worker threads burn a shared machine's cores between the many small runs of a training loop.
    extra: { session: { 'intra_op.allow_spinning': '0', ...(opts.prepack === false ? { disable_prepacking: '1' } : {}) } },
  };
  try {
    return typeof source === 'string' ? await ort.InferenceSession.create(source, options) : await ort.InferenceSession.create(source, options);
  } catch (e) {
    throw new OnnxError(`onnxruntime could not load the model: ${(e as Error).message}`);
  }
}

/** Runs a session on IR tensors and returns IR tensors by output name. */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, Tensor>,
  outputNames?: string[],
): Promise<Record<string, Tensor>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrtTensor(v, `input '${k}'`);
  const out = outputNames ? await session.run(ortFeeds, outputNames) : await session.run(ortFeeds);
  const res: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(out)) res[k] = fromOrtTensor(v);
  return res;
}

/** One-shot convenience: build a session for a model, run it, release it. */
export async function runModel(
  model: Model,
  feeds: Record<string, Tensor>,
  opts: SessionOptions = {},
): Promise<Record<string, Tensor>> {
  const s = await createSession(model, opts);
  try {
    return await runSession(s, feeds);
  } finally {
    await s.release();
  }
}
