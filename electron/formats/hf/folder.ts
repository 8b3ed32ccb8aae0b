// Reads a Hugging Face model folder (what `save_pretrained` writes, or a hub-cache snapshot): config.json, the
// safetensors weights (one file or shards with an index), and the tokenizer / generation / processor configs.
// No architecture knowledge lives here; the mappings in architectures/ build on this API.
//
// Everything in the folder is untrusted: every path must resolve inside the folder (hub snapshots may link into
// their own model's blobs/), safetensors headers are bounds-checked, and no multi-GB file is ever read whole:
// headers come from one bounded read, tensors from positioned reads of exactly their bytes.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, posix, relative, resolve, sep, win32 } from 'node:path';
import { z } from 'zod';
import { type DType, type Tensor, OnnxError, allocData, float16BitsToFloat32, isFloat, tensorSize } from '../../onnx/ir.js';
import { type SafetensorsHeader, describeFsError, readExactly, readSafetensorsHeader, streamAsFloat32 } from '../../onnx/safetensors.js';
import {
  type GenerationConfig,
  type PreprocessorConfig,
  type ProcessorConfig,
  type SpecialTokensMap,
  type TokenizerConfig,
  chatTemplateFileSchema,
  describeValue,
  generationConfigSchema,
  parseConfig,
  preprocessorConfigSchema,
  processorConfigSchema,
  specialTokensMapSchema,
  tokenizerConfigSchema,
} from './configs.js';

export type { GenerationConfig, PreprocessorConfig, ProcessorConfig, TokenizerConfig } from './configs.js';

/** Every error this module throws; the message names the file (relative to the folder) and the tensor or field. */
export class ModelFolderError extends Error {
  override name = 'ModelFolderError';
}

export interface HfTensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Path of the shard relative to the folder ('/'-separated). */
  file: string;
  /** Absolute byte offsets of the tensor's data in the file. */
  begin: number;
  end: number;
}

export interface HfWeights {
  /** Relative shard paths in order. */
  files: string[];
  tensors: ReadonlyMap<string, HfTensorEntry>;
  /** Sum of the tensors' bytes. */
  totalBytes: number;
  /** Distinct float dtypes the tensors are stored in. */
  dtypes: DType[];
  /** Elements of all float tensors (integer tensors are buffers such as position ids, not parameters). */
  parameterCount: number;
  /** sha256 over each shard's relative name, byte size and raw header: cheap, and changes when any shard is replaced. */
  fingerprint: string;
  /** Things that are odd but do not stop loading (e.g. an index whose total_size is larger than the shards hold). */
  warnings: string[];
  has(name: string): boolean;
  /** The tensor in its stored dtype, from one positioned read of its bytes. */
  read(name: string): Tensor;
  /** The tensor converted to float32 (from F16, BF16 or F64); integer tensors are an error. */
  readFloat32(name: string): Tensor;
  /** readFloat32's bytes, written in pieces from positioned reads (never the whole tensor in memory). */
  streamFloat32(name: string, write: (bytes: Uint8Array) => void): void;
}

export interface HfModelFolder {
  /** The folder as given (resolved to absolute); for a hub-cache repository folder, its snapshot. */
  dir: string;
  /** config.json: a JSON object with `model_type` or `architectures`. */
  config: Record<string, unknown>;
  weights: HfWeights;
  /** Absolute path of tokenizer.json, when present (checked to stay inside the folder). */
  tokenizerJson?: string;
  /** tokenizer_config.json, with special_tokens_map.json merged in and chat_template.jinja applied, as transformers does. */
  tokenizerConfig?: TokenizerConfig;
  generationConfig?: GenerationConfig;
  preprocessorConfig?: PreprocessorConfig;
  processorConfig?: ProcessorConfig;
  /** The chat template a processor would use: chat_template.jinja, else chat_template.json, else the tokenizer's. */
  chatTemplate?: string;
  /** What the folder holds (for the UI), '/'-separated relative names, hidden entries left out. */
  files: Array<{ name: string; bytes: number }>;
}

const CONFIG = 'config.json';
const SAFE_WEIGHTS = 'model.safetensors';
const SAFE_INDEX = 'model.safetensors.index.json';
/** Config files are small; anything bigger is not what its name says. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;
const MAX_LISTED_FILES = 5000;
const MAX_LIST_DEPTH = 4;

/** True when `dir` looks like a transformers model folder: config.json plus weights. Never throws. */
export function isHfFolder(dir: string): boolean {
  try {
    const folder = resolveHubRepository(resolve(dir));
    if (!existsSync(join(folder, CONFIG))) return false;
    if (existsSync(join(folder, SAFE_WEIGHTS)) || existsSync(join(folder, SAFE_INDEX))) return true;
    return readdirSync(folder).some(isPytorchWeightsName);
  } catch {
    return false;
  }
}

export function openHfFolder(dir: string): HfModelFolder {
  return guarded(dir, () => {
    const folder = confinementFor(resolveHubRepository(resolve(dir)));
    const config = readConfig(folder);
    const weights = openWeightsIn(folder);
    let tokenizerJson: string | undefined;
    if (present(folder, 'tokenizer.json')) {
      realFile(folder, 'tokenizer.json'); // confinement check; callers get the name inside the folder
      tokenizerJson = join(folder.dir, 'tokenizer.json');
    }
    const jinja = present(folder, 'chat_template.jinja') ? readText(folder, 'chat_template.jinja') : undefined;
    const tokenizerConfig = readTokenizerConfig(folder, jinja);
    const processorTemplate = optionalConfig(folder, 'chat_template.json', chatTemplateFileSchema)?.chat_template?.template;
    return {
      dir: folder.dir,
      config,
      weights,
      tokenizerJson,
      tokenizerConfig,
      generationConfig: optionalConfig(folder, 'generation_config.json', generationConfigSchema),
      preprocessorConfig: optionalConfig(folder, 'preprocessor_config.json', preprocessorConfigSchema),
      processorConfig: optionalConfig(folder, 'processor_config.json', processorConfigSchema),
      chatTemplate: jinja ?? processorTemplate ?? tokenizerConfig?.chat_template,
      files: listFiles(folder),
    };
  });
}

/**
 * Reads a weights set that is not at the folder root (e.g. a subfolder), with the same checks. `indexOrFile` is a
 * path relative to `dir`: a `.safetensors` file or a `.json` index; by default model.safetensors, then its index.
 */
export function openHfWeights(dir: string, indexOrFile?: string): HfWeights {
  return guarded(dir, () => openWeightsIn(confinementFor(resolve(dir)), indexOrFile));
}

// ---------------------------------------------------------------- confinement

/** Where a folder's files may resolve to: the folder itself, and for a hub snapshot its model's blobs/. */
interface Confinement {
  /** As given (absolute): relative names are joined to this. */
  dir: string;
  realDir: string;
  /** `…/models--org--name/blobs` (real path) when `dir` lies in a snapshot of the hub cache. */
  hubBlobs?: string;
}

function confinementFor(dir: string): Confinement {
  let realDir: string;
  try {
    realDir = realpathSync(dir);
  } catch (e) {
    throw new ModelFolderError(`cannot open the model folder '${dir}': ${describeFsError(e)}`);
  }
  if (!statSync(realDir).isDirectory()) throw new ModelFolderError(`'${dir}' is not a folder`);
  return { dir, realDir, hubBlobs: hubBlobsFor(realDir) };
}

/** The hub cache keeps `models--org--name/snapshots/<rev>/…` as links into `models--org--name/blobs/`. */
function hubBlobsFor(realDir: string): string | undefined {
  const parts = realDir.split(sep);
  for (let i = parts.length - 2; i >= 1; i--) {
    if (parts[i] === 'snapshots' && parts[i - 1].startsWith('models--')) {
      const blobs = [...parts.slice(0, i), 'blobs'].join(sep);
      try {
        return realpathSync(blobs);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** A hub repository folder (`models--org--name`, no config.json) stands for the snapshot its refs/main names. */
function resolveHubRepository(dir: string): string {
  const snapshots = join(dir, 'snapshots');
  if (existsSync(join(dir, CONFIG)) || !existsSync(snapshots)) return dir;
  const refFile = join(dir, 'refs', 'main');
  // A ref is a commit hash; anything long is not one, and is not read.
  if (existsSync(refFile) && statSync(refFile).size <= 256) {
    const rev = readFileSync(refFile, 'utf8').trim();
    if (/^[\w.-]+$/.test(rev) && existsSync(join(snapshots, rev))) return join(snapshots, rev);
  }
  const revs = readdirSync(snapshots).filter((n) => !n.startsWith('.'));
  if (revs.length === 1) return join(snapshots, revs[0]);
  throw new ModelFolderError(
    `'${dir}' is a hub-cache repository with ${revs.length} snapshots and no usable refs/main; open one of snapshots/{${revs.join(', ')}}`,
  );
}

function isInside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Refuses names that could leave the folder before touching the file system. */
function checkRelativeName(name: string, what: string): void {
  if (name === '' || name.includes('\0')) throw new ModelFolderError(`${what}: '${name}' is not a file name`);
  if (posix.isAbsolute(name) || win32.isAbsolute(name)) {
    throw new ModelFolderError(`${what}: '${name}' is an absolute path; files must stay inside the model's folder`);
  }
  if (name.split(/[\\/]/).includes('..')) throw new ModelFolderError(`${what}: '${name}' points outside the model's folder`);
}

/** True when the folder has an entry by this name (a broken link counts, so it is reported rather than skipped). */
function present(folder: Confinement, rel: string): boolean {
  try {
    lstatSync(join(folder.dir, rel));
    return true;
  } catch {
    return false;
  }
}

/** The real path of a file in the folder, refusing links that lead anywhere but the folder (or its hub blobs). */
function realFile(folder: Confinement, rel: string): string {
  checkRelativeName(rel, rel);
  const full = join(folder.dir, rel);
  let real: string;
  try {
    real = realpathSync(full);
  } catch (e) {
    const isLink = (() => {
      try {
        return lstatSync(full).isSymbolicLink();
      } catch {
        return false;
      }
    })();
    if (isLink) throw new ModelFolderError(`${rel}: is a link to a file that does not exist (an incomplete download?)`);
    throw new ModelFolderError(`${rel}: cannot be read (${describeFsError(e)})`);
  }
  const allowed = isInside(folder.realDir, real) || (folder.hubBlobs !== undefined && isInside(folder.hubBlobs, real));
  if (!allowed) throw new ModelFolderError(`${rel}: resolves to '${real}', outside the model's folder; Composer reads only files inside it`);
  if (!statSync(real).isFile()) throw new ModelFolderError(`${rel}: is not a file`);
  return real;
}

// ---------------------------------------------------------------- JSON files

function readText(folder: Confinement, rel: string): string {
  const fd = openFile(realFile(folder, rel), rel);
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_JSON_BYTES) throw new ModelFolderError(`${rel}: is ${size} bytes, more than the ${MAX_JSON_BYTES}-byte limit for a config file`);
    const bytes = readExactly(fd, 0, size, rel);
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
    } catch {
      throw new ModelFolderError(`${rel}: is not a text file (not valid UTF-8)`);
    }
  } finally {
    closeSync(fd);
  }
}

function openFile(real: string, rel: string): number {
  try {
    return openSync(real, 'r');
  } catch (e) {
    throw new ModelFolderError(`${rel}: cannot be read (${describeFsError(e)})`);
  }
}

function readJson(folder: Confinement, rel: string): unknown {
  const text = readText(folder, rel);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(`${rel}: is not valid JSON (${(e as Error).message})`);
  }
}

function parsed<T extends z.ZodType>(schema: T, value: unknown, rel: string): z.output<T> {
  const result = parseConfig(schema, value, rel);
  if (!result.ok) throw new ModelFolderError(result.message);
  return result.value;
}

function optionalConfig<T extends z.ZodType>(folder: Confinement, rel: string, schema: T): z.output<T> | undefined {
  return present(folder, rel) ? parsed(schema, readJson(folder, rel), rel) : undefined;
}

function readConfig(folder: Confinement): Record<string, unknown> {
  if (!present(folder, CONFIG)) throw new ModelFolderError(`${CONFIG}: missing; a transformers model folder has one beside its weights`);
  const value = readJson(folder, CONFIG);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelFolderError(`${CONFIG}: must hold a JSON object, got ${describeValue(value)}`);
  }
  const config = value as Record<string, unknown>;
  if (config.model_type !== undefined && typeof config.model_type !== 'string') {
    throw new ModelFolderError(`${CONFIG}: model_type must be a string, got ${describeValue(config.model_type)}`);
  }
  const archs = config.architectures;
  if (archs !== undefined && archs !== null && !(Array.isArray(archs) && archs.every((a) => typeof a === 'string'))) {
    throw new ModelFolderError(`${CONFIG}: architectures must be a list of class names, got ${describeValue(archs)}`);
  }
  if (config.model_type === undefined && !Array.isArray(archs)) {
    throw new ModelFolderError(`${CONFIG}: has neither "model_type" nor "architectures"; it is not a transformers model config`);
  }
  return config;
}

/**
 * transformers' merge: special_tokens_map.json overrides tokenizer_config.json (additional_special_tokens are
 * united), but only for legacy configs without `added_tokens_decoder`; chat_template.jinja replaces any template.
 */
function readTokenizerConfig(folder: Confinement, jinja: string | undefined): TokenizerConfig | undefined {
  const config = optionalConfig(folder, 'tokenizer_config.json', tokenizerConfigSchema);
  const map = optionalConfig(folder, 'special_tokens_map.json', specialTokensMapSchema);
  if (config === undefined && map === undefined && jinja === undefined) return undefined;
  const merged: TokenizerConfig = config ?? parsed(tokenizerConfigSchema, {}, 'tokenizer_config.json');
  if (map && config?.added_tokens_decoder === undefined) mergeSpecialTokens(merged, map);
  if (jinja !== undefined) merged.chat_template = jinja;
  return merged;
}

function mergeSpecialTokens(config: TokenizerConfig, map: SpecialTokensMap): void {
  for (const [key, value] of Object.entries(map)) {
    if (value === undefined) continue;
    if (key === 'additional_special_tokens' && Array.isArray(value)) {
      const united = [...(config.additional_special_tokens ?? [])];
      for (const t of value as string[]) if (!united.includes(t)) united.push(t);
      config.additional_special_tokens = united;
    } else {
      (config as Record<string, unknown>)[key] = value;
    }
  }
}

// ---------------------------------------------------------------- weights

function isPytorchWeightsName(name: string): boolean {
  return name.startsWith('pytorch_model') && name.includes('.bin');
}

const CONVERT_HINT =
  'Composer reads safetensors weights only (a .bin file is a pickle, which can run code when loaded). ' +
  'Convert it once in Python: `model = AutoModel.from_pretrained(dir); model.save_pretrained(dir, safe_serialization=True)`';

function openWeightsIn(folder: Confinement, indexOrFile?: string): HfWeights {
  if (indexOrFile !== undefined) {
    checkRelativeName(indexOrFile, indexOrFile);
    const rel = toPosix(indexOrFile);
    if (isPytorchWeightsName(posix.basename(rel)) || rel.endsWith('.bin')) throw new ModelFolderError(`${rel}: ${CONVERT_HINT}`);
    if (!present(folder, rel)) throw new ModelFolderError(`${rel}: no such file in the model's folder`);
    return rel.endsWith('.json') ? openSharded(folder, rel) : openShards(folder, [rel], undefined);
  }
  if (present(folder, SAFE_WEIGHTS)) return openShards(folder, [SAFE_WEIGHTS], undefined);
  if (present(folder, SAFE_INDEX)) return openSharded(folder, SAFE_INDEX);
  const names = readdirSync(folder.dir);
  const bin = names.find(isPytorchWeightsName);
  if (bin) throw new ModelFolderError(`${bin}: ${CONVERT_HINT}`);
  const others = names.filter((n) => n.endsWith('.safetensors'));
  const hint = others.length
    ? `; it has ${others.map((n) => `'${n}'`).join(', ')}; open it by name`
    : names.some((n) => n.endsWith('.onnx') || n === 'onnx')
      ? '; it looks like an ONNX export, which opens as an ONNX model folder'
      : '';
  throw new ModelFolderError(`${SAFE_WEIGHTS}: missing, and there is no ${SAFE_INDEX} either${hint}`);
}

const indexSchema = z.looseObject({
  metadata: z
    .looseObject({ total_size: z.number().min(0).nullish() })
    .nullish(),
  weight_map: z.record(z.string(), z.string()),
});


/** Data bytes hashed per shard: all of a small shard, else this many evenly spaced blocks (a cheap content check). */
const FINGERPRINT_BLOCKS = 32;
const FINGERPRINT_BLOCK_BYTES = 4096;

/**
 * Adds samples of a shard's tensor data to the fingerprint: headers alone miss a tensor rewritten in place with the
 * same shape, and hashing gigabytes on every open is too slow, so small shards are hashed whole and large ones at
 * 32 fixed places (a retrained or replaced checkpoint changes them with near certainty).
 */
function hashDataSamples(hash: ReturnType<typeof createHash>, path: string, file: string, dataStart: number, fileSize: number): void {
  const dataBytes = fileSize - dataStart;
  const whole = dataBytes <= FINGERPRINT_BLOCKS * FINGERPRINT_BLOCK_BYTES;
  const fd = openSync(path, 'r');
  try {
    const length = whole ? dataBytes : FINGERPRINT_BLOCK_BYTES;
    const block = new Uint8Array(length);
    const offsets = whole ? [dataStart] : Array.from({ length: FINGERPRINT_BLOCKS }, (_, i) => dataStart + Math.floor(((dataBytes - FINGERPRINT_BLOCK_BYTES) * i) / (FINGERPRINT_BLOCKS - 1)));
    for (const at of offsets) hash.update(readExactly(fd, at, length, file, block));
  } finally {
    closeSync(fd);
  }
}

/** Shards listed by an index; shard names are relative to the index's own folder, as in transformers. */
function openSharded(folder: Confinement, indexRel: string): HfWeights {
  const index = parsed(indexSchema, readJson(folder, indexRel), indexRel);
  const base = posix.dirname(indexRel);
  const tensorsByShard = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(index.weight_map)) {
    checkRelativeName(shard, `${indexRel}: shard for tensor '${tensor}'`);
    const rel = base === '.' ? toPosix(shard) : posix.join(base, toPosix(shard));
    const list = tensorsByShard.get(rel) ?? [];
    list.push(tensor);
    tensorsByShard.set(rel, list);
  }
  const files = [...tensorsByShard.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (files.length === 0) throw new ModelFolderError(`${indexRel}: weight_map lists no tensors`);
  for (const file of files) {
    if (!present(folder, file)) {
      const tensors = tensorsByShard.get(file) ?? [];
      const more = tensors.length > 1 ? ` and ${tensors.length - 1} more` : '';
      throw new ModelFolderError(`${indexRel}: lists shard '${file}' (holding '${tensors[0]}'${more}), but the folder has no such file`);
    }
  }
  const weights = openShards(folder, files, { rel: indexRel, weightMap: index.weight_map, base });

  const claimed = index.metadata?.total_size;
  if (typeof claimed === 'number' && claimed !== weights.totalBytes) {
    const message = `${indexRel}: metadata.total_size is ${claimed} bytes but the shards hold ${weights.totalBytes} bytes of tensors`;
    // A writer that counts whole storages (huggingface_hub) can claim more than the tensors hold; never less.
    if (claimed < weights.totalBytes) throw new ModelFolderError(message);
    weights.warnings.push(message);
  }
  return weights;
}

interface IndexInfo {
  rel: string;
  weightMap: Record<string, string>;
  base: string;
}

function openShards(folder: Confinement, files: string[], index: IndexInfo | undefined): HfWeights {
  const tensors = new Map<string, HfTensorEntry>();
  const realPaths = new Map<string, { path: string; size: number }>();
  const hash = createHash('sha256');
  for (const file of files) {
    const real = realFile(folder, file);
    const header = readHeader(real, file);
    realPaths.set(file, { path: real, size: header.fileSize });
    hash.update(file).update('\0').update(String(header.fileSize)).update('\0').update(header.headerBytes);
    hashDataSamples(hash, real, file, header.dataStart, header.fileSize);
    for (const e of header.entries) {
      const other = tensors.get(e.name);
      if (other) throw new ModelFolderError(`tensor '${e.name}' is stored in both '${other.file}' and '${file}'`);
      tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, file, begin: header.dataStart + e.begin, end: header.dataStart + e.end });
    }
  }
  if (index) {
    for (const [name, shard] of Object.entries(index.weightMap)) {
      const file = index.base === '.' ? toPosix(shard) : posix.join(index.base, toPosix(shard));
      const entry = tensors.get(name);
      if (!entry) throw new ModelFolderError(`${index.rel}: maps tensor '${name}' to '${file}', which does not contain it`);
      if (entry.file !== file) throw new ModelFolderError(`${index.rel}: maps tensor '${name}' to '${file}', but it is stored in '${entry.file}'`);
    }
  }
  return makeWeights(files, tensors, realPaths, hash.digest('hex'));
}

function readHeader(real: string, file: string): SafetensorsHeader {
  try {
    return readSafetensorsHeader(real, file);
  } catch (e) {
    if (e instanceof OnnxError) throw new ModelFolderError(e.message);
    throw e;
  }
}

const FLOAT_ORDER: DType[] = ['float32', 'bfloat16', 'float16', 'float64'];

function makeWeights(
  files: string[],
  tensors: Map<string, HfTensorEntry>,
  realPaths: Map<string, { path: string; size: number }>,
  fingerprint: string,
): HfWeights {
  let totalBytes = 0;
  let parameterCount = 0;
  const stored = new Set<DType>();
  for (const t of tensors.values()) {
    totalBytes += t.end - t.begin;
    if (isFloat(t.dtype)) {
      parameterCount += tensorSize(t.shape);
      stored.add(t.dtype);
    }
  }

  const entryFor = (name: string): HfTensorEntry => {
    const entry = tensors.get(name);
    if (!entry) throw new ModelFolderError(`no tensor '${name}' in ${files.map((f) => `'${f}'`).join(', ')}`);
    return entry;
  };

  const withShard = <T>(entry: HfTensorEntry, use: (fd: number) => T): T => {
    const source = realPaths.get(entry.file);
    if (!source) throw new ModelFolderError(`${entry.file}: not part of these weights`);
    const fd = openFile(source.path, entry.file);
    try {
      // The header was validated against this size; a different size means the offsets no longer hold.
      const size = fstatSync(fd).size;
      if (size !== source.size) {
        throw new ModelFolderError(`${entry.file}: changed since it was opened (${size} bytes, was ${source.size}); open the folder again`);
      }
      return use(fd);
    } finally {
      closeSync(fd);
    }
  };

  const streamFloat32 = (name: string, write: (bytes: Uint8Array) => void): void =>
    guarded(undefined, () => {
      const entry = entryFor(name);
      if (!isFloat(entry.dtype)) throw new ModelFolderError(`tensor '${name}' in '${entry.file}' is ${entry.dtype}, not a float tensor`);
      if (entry.end > entry.begin) withShard(entry, (fd) => streamAsFloat32(fd, entry.begin, entry.end - entry.begin, entry.dtype, entry.file, write));
    });

  const read = (name: string): Tensor =>
    guarded(undefined, () => {
      const entry = entryFor(name);
      const source = realPaths.get(entry.file);
      if (!source) throw new ModelFolderError(`${entry.file}: not part of these weights`);
      const data = allocData(entry.dtype, tensorSize(entry.shape)) as Exclude<Tensor['data'], string[]>;
      const length = entry.end - entry.begin;
      if (length === 0) return { dtype: entry.dtype, dims: [...entry.shape], data };
      const fd = openFile(source.path, entry.file);
      try {
        // The header was validated against this size; a different size means the offsets no longer hold.
        const size = fstatSync(fd).size;
        if (size !== source.size) {
          throw new ModelFolderError(`${entry.file}: changed since it was opened (${size} bytes, was ${source.size}); open the folder again`);
        }
        readExactly(fd, entry.begin, length, entry.file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } finally {
        closeSync(fd);
      }
      return { dtype: entry.dtype, dims: [...entry.shape], data };
    });

  const readFloat32 = (name: string): Tensor => {
    const entry = entryFor(name);
    if (!isFloat(entry.dtype)) {
      throw new ModelFolderError(`tensor '${name}' in '${entry.file}' is ${entry.dtype}, not a float tensor; read() returns it as stored`);
    }
    const t = read(name);
    return { dtype: 'float32', dims: t.dims, data: toFloat32(t) };
  };

  return {
    files: [...files],
    tensors,
    totalBytes,
    dtypes: FLOAT_ORDER.filter((d) => stored.has(d)),
    parameterCount,
    fingerprint,
    warnings: [],
    has: (name) => tensors.has(name),
    read,
    readFloat32,
    streamFloat32,
  };
}

let f16Table: Float32Array | undefined;

/** Exact conversion: bf16 is the top half of a float32; f16 (subnormals, ±inf, NaN) via a 64K lookup table. */
function toFloat32(t: Tensor): Float32Array {
  switch (t.dtype) {
    case 'float32':
      return t.data as Float32Array;
    case 'float64':
      return Float32Array.from(t.data as Float64Array);
    case 'bfloat16': {
      const bits = t.data as Uint16Array;
      const out = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'float16': {
      if (!f16Table) {
        f16Table = new Float32Array(65536);
        for (let b = 0; b < 65536; b++) f16Table[b] = float16BitsToFloat32(b);
      }
      const table = f16Table;
      const bits = t.data as Uint16Array;
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
      return out;
    }
    default:
      throw new ModelFolderError(`${t.dtype} is not a float dtype`);
  }
}

// ---------------------------------------------------------------- listing and errors

function listFiles(folder: Confinement): Array<{ name: string; bytes: number }> {
  const out: Array<{ name: string; bytes: number }> = [];
  const walk = (rel: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(rel ? join(folder.dir, rel) : folder.dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (name.startsWith('.') || out.length >= MAX_LISTED_FILES) continue;
      const childRel = rel ? `${rel}/${name}` : name;
      let real: string;
      try {
        real = realpathSync(join(folder.dir, childRel));
      } catch {
        continue; // a broken link holds nothing to show
      }
      if (!isInside(folder.realDir, real) && !(folder.hubBlobs && isInside(folder.hubBlobs, real))) continue;
      const stat = statSync(real);
      if (stat.isDirectory()) {
        if (depth < MAX_LIST_DEPTH) walk(childRel, depth + 1);
      } else if (stat.isFile()) {
        out.push({ name: childRel, bytes: stat.size });
      }
    }
  };
  walk('', 1);
  return out;
}

function toPosix(name: string): string {
  return posix.normalize(name.replace(/\\/g, '/'));
}

/** Runs `fn`, turning anything that is not already a ModelFolderError into one (no stacks, no raw fs messages). */
function guarded<T>(dir: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ModelFolderError) throw e;
    if (e instanceof OnnxError) throw new ModelFolderError(e.message);
    const where = dir === undefined ? 'model weights' : `model folder '${dir}'`;
    throw new ModelFolderError(`${where}: ${describeFsError(e)}`);
  }
}
