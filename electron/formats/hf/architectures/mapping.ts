// Shared tools of the architecture files: reading config fields with errors that name them, and mapping a node's
// weight names onto the folder's state-dict names (rename, with optional tensor transforms such as a split).

import { type Tensor, tensorSize } from '../../../onnx/ir.js';
import { getNodeType } from '../../../nodes/catalog.js';
import type { MetaBuildContext } from '../../../nodes/blocks.js';
import type { ResolvedShapes } from '../../../nodes/types.js';
import { type HfModelFolder, ModelFolderError } from '../folder.js';
import type { MappedWeight, NodeWeightMap } from './types.js';

export class ArchitectureError extends ModelFolderError {}

// ---------------------------------------------------------------------------------------------------------------
// config.json fields

/** Reads typed fields of a (nested) config object; every error names the file and the dotted field path. */
export class ConfigReader {
  constructor(
    readonly raw: Record<string, unknown>,
    /** 'config.json' or 'config.json: text_config' */
    readonly where = 'config.json',
    private readonly prefix = '',
  ) {}

  private path(key: string): string {
    return `${this.prefix}${key}`;
  }

  /** An error naming the field by its dotted path (`config.json: vision_config.hidden_size …`). */
  fail(key: string, why: string): ArchitectureError {
    return new ArchitectureError(`config.json: ${this.path(key)} ${why}`);
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  /** A nested config (`vision_config`, `text_config`); `{}` when absent and `optional`. */
  nested(key: string, optional = false): ConfigReader {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (optional) return new ConfigReader({}, this.where, `${this.path(key)}.`);
      throw this.fail(key, 'is missing (this architecture needs it)');
    }
    if (typeof v !== 'object' || Array.isArray(v)) throw this.fail(key, 'must be an object');
    return new ConfigReader(v as Record<string, unknown>, this.where, `${this.path(key)}.`);
  }

  int(key: string, fallback?: number, opts: { min?: number } = {}): number {
    const v = this.raw[key] ?? fallback;
    if (v === undefined || v === null) throw this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.fail(key, `must be an integer, got ${JSON.stringify(v)}`);
    const min = opts.min ?? 1;
    if (v < min) throw this.fail(key, `must be ≥ ${min}, got ${v}`);
    return v;
  }

  /** An optional integer (null and absent both give undefined). */
  optInt(key: string, opts: { min?: number } = {}): number | undefined {
    return this.has(key) ? this.int(key, undefined, opts) : undefined;
  }

  num(key: string, fallback?: number, opts: { positive?: boolean } = {}): number {
    const v = this.raw[key] ?? fallback;
    if (v === undefined || v === null) throw this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.fail(key, `must be a number, got ${JSON.stringify(v)}`);
    if (opts.positive && v <= 0) throw this.fail(key, `must be positive, got ${v}`);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'boolean') throw this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'string') throw this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A string field that must be one of `allowed` (the message lists them). */
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback?: T): T {
    const v = this.str(key, fallback);
    if (!(allowed as readonly string[]).includes(v)) {
      throw this.fail(key, `is '${v}'; Composer supports ${allowed.map((a) => `'${a}'`).join(', ')}`);
    }
    return v as T;
  }

  /** Refuses a field whose value changes the model in a way Composer does not implement. */
  refuse(key: string, isSupported: (v: unknown) => boolean, why: string): void {
    const v = this.raw[key];
    if (v !== undefined && v !== null && !isSupported(v)) throw this.fail(key, `= ${JSON.stringify(v)}: ${why}`);
  }
}

/** The class named by `architectures[0]`, or undefined. */
export function configClass(config: Record<string, unknown>): string | undefined {
  const a = config.architectures;
  return Array.isArray(a) && typeof a[0] === 'string' ? a[0] : undefined;
}

/** The last path segment of the folder (or the hub's `org/name`), for graph names. */
export function folderDisplayName(dir: string): string {
  const hub = /models--([^/\\]+)--([^/\\]+)[/\\]snapshots[/\\]/.exec(dir);
  if (hub) return `${hub[1]}/${hub[2]}`;
  return dir.replace(/[/\\]+$/, '').split(/[/\\]/).pop() ?? dir;
}

// ---------------------------------------------------------------------------------------------------------------
// Weights

/** One folder tensor as float32, read when the node builds. */
export function tensorFrom(folder: HfModelFolder, hfName: string): MappedWeight {
  return { from: [hfName], read: () => folder.weights.readFloat32(hfName) };
}

/** A weight made of several folder tensors by `combine` (e.g. BLIP-2's q_bias, 0, v_bias → one qkv bias). */
export function combined(folder: HfModelFolder, hfNames: string[], combine: (ts: Tensor[]) => Tensor): MappedWeight {
  return { from: hfNames, read: () => combine(hfNames.map((n) => folder.weights.readFloat32(n))) };
}

/** Rows [start, end) of axis 0 of a folder tensor (a fused qkv weight split into q, k and v). */
export function rowsOf(folder: HfModelFolder, hfName: string, start: number, end: number): MappedWeight {
  return {
    from: [hfName],
    read: () => {
      const t = folder.weights.readFloat32(hfName);
      const row = tensorSize(t.dims.slice(1));
      const data = (t.data as Float32Array).slice(start * row, end * row);
      return { dtype: 'float32', dims: [end - start, ...t.dims.slice(1)], data };
    },
  };
}

/** Concatenation along axis 0 (fused weights built from separate ones). */
export function concatRows(ts: Tensor[]): Tensor {
  const parts = ts.map((t) => t.data as Float32Array);
  const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return { dtype: 'float32', dims: [ts.reduce((n, t) => n + (t.dims[0] ?? 0), 0), ...(ts[0]?.dims.slice(1) ?? [])], data };
}

/**
 * The trainable weights (and replaceable buffers) a node of `type` with `params` has, by name and shape.
 * `inputShapes` names the optional inputs the graph connects when they add weights (a Q-Former reading text).
 */
export function nodeWeightShapes(type: string, params: Record<string, unknown>, nodeId = 'import', inputShapes: ResolvedShapes = {}): Map<string, number[]> {
  const def = getNodeType(type);
  if (!def.build) throw new ArchitectureError(`node type '${type}' has no ONNX builder`);
  const ctx: MetaBuildContext = { nodeId, seed: 0, inputShapes, meta: true };
  const fragment = def.build(def.params.parse(params), ctx);
  const out = new Map<string, number[]>();
  for (const w of fragment.weights) out.set(w, [...(fragment.graph.initializers.get(w)?.dims ?? [])]);
  return out;
}

/** Same dims once size-1 axes are dropped ([1,1,D] and [D]): a reshape, never a transpose. */
function sameUpToUnitAxes(a: readonly number[], b: readonly number[]): boolean {
  const sa = a.filter((d) => d !== 1);
  const sb = b.filter((d) => d !== 1);
  return sa.length === sb.length && sa.every((d, i) => d === sb[i]);
}

/**
 * A node's weights by renaming: every trainable weight of the node maps to `toHf(ourName)` in the folder (or to a
 * custom MappedWeight). Checked before anything is read (headers only): a tensor the folder lacks, or one whose
 * shape is not the one config.json implies, is an error naming the tensor and its file. Tensors that differ only by
 * size-1 axes (HF's class embedding [1,1,D] for our [D]) are reshaped.
 */
export function renamedWeights(
  folder: HfModelFolder,
  type: string,
  params: Record<string, unknown>,
  toHf: (ours: string) => string | MappedWeight,
  what: string,
  inputShapes: ResolvedShapes = {},
): NodeWeightMap {
  const out: NodeWeightMap = new Map();
  for (const [ours, want] of nodeWeightShapes(type, params, 'import', inputShapes)) {
    const mapped = toHf(ours);
    for (const hf of typeof mapped === 'string' ? [mapped] : mapped.from) {
      if (!folder.weights.has(hf)) {
        throw new ArchitectureError(
          `${what}: the folder has no tensor '${hf}' (needed for weight '${ours}'; files: ${folder.weights.files.join(', ')})`,
        );
      }
    }
    if (typeof mapped !== 'string') {
      out.set(ours, { ...mapped, dims: [...want] });
      continue;
    }
    const entry = folder.weights.tensors.get(mapped);
    if (entry && !sameUpToUnitAxes(entry.shape, want)) {
      throw new ArchitectureError(
        `${what}: tensor '${mapped}' in '${entry.file}' has shape [${entry.shape.join(',')}], but config.json implies [${want.join(',')}] (weight '${ours}')`,
      );
    }
    out.set(ours, {
      from: [mapped],
      read: () => ({ ...folder.weights.readFloat32(mapped), dims: [...want] }),
      dims: [...want],
      stream: (write) => folder.weights.streamFloat32(mapped, write),
    });
  }
  return out;
}
