// What a Transformers.js / Optimum ONNX folder holds: config.json and tokenizer files at the top, the graphs under
// onnx/ (`model.onnx`, `decoder_model_merged.onnx`, a VLM's `vision_encoder.onnx` + `embed_tokens.onnx` +
// `decoder_model_merged.onnx`), each possibly in several precisions (`model_fp16.onnx`, `model_quantized.onnx`,
// `model_q4.onnx`, …: the dtype suffixes Transformers.js loads by).

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export class OnnxFolderError extends Error {
  override name = 'OnnxFolderError';
}

/** Transformers.js dtype → file-name suffix (its DEFAULT_DTYPE_SUFFIX_MAPPING). */
export const PRECISION_SUFFIX = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;
export type Precision = keyof typeof PRECISION_SUFFIX;
export const PRECISIONS = Object.keys(PRECISION_SUFFIX) as Precision[];

/** The graphs a folder can be made of, by role. */
export const GRAPH_ROLES = ['model', 'decoder_model_merged', 'vision_encoder', 'embed_tokens'] as const;
export type GraphRole = (typeof GRAPH_ROLES)[number];

export interface OnnxFolderLayout {
  dir: string;
  /** Every .onnx file under onnx/ by role, then precision (file names relative to the folder). */
  graphs: Map<GraphRole, Map<Precision, string>>;
  /** .onnx files that fit no role/precision (listed, not used). */
  others: string[];
  files: Array<{ name: string; bytes: number }>;
}

const SAFETENSORS = /\.safetensors(\.index\.json)?$/;

/** A folder whose onnx/ holds .onnx files and which has no safetensors weights. Never throws. */
export function isOnnxFolder(dir: string): boolean {
  try {
    if (readdirSync(dir).some((n) => SAFETENSORS.test(n))) return false;
    const sub = join(dir, 'onnx');
    return existsSync(sub) && statSync(sub).isDirectory() && readdirSync(sub).some((n) => n.endsWith('.onnx'));
  } catch {
    return false;
  }
}

function parseName(file: string): { role: GraphRole; precision: Precision } | undefined {
  const stem = file.replace(/\.onnx$/, '');
  for (const role of GRAPH_ROLES) {
    if (!stem.startsWith(role)) continue;
    const suffix = stem.slice(role.length);
    const precision = PRECISIONS.find((p) => PRECISION_SUFFIX[p] === suffix);
    if (precision) return { role, precision };
  }
  return undefined;
}

export function readLayout(dir: string): OnnxFolderLayout {
  const graphs = new Map<GraphRole, Map<Precision, string>>();
  const others: string[] = [];
  const files: Array<{ name: string; bytes: number }> = [];
  for (const name of readdirSync(dir)) {
    const st = statSync(join(dir, name));
    if (st.isFile()) files.push({ name, bytes: st.size });
  }
  for (const name of readdirSync(join(dir, 'onnx')).sort()) {
    const st = statSync(join(dir, 'onnx', name));
    if (!st.isFile()) continue;
    files.push({ name: `onnx/${name}`, bytes: st.size });
    if (!name.endsWith('.onnx')) continue;
    const parsed = parseName(name);
    if (!parsed) {
      others.push(`onnx/${name}`);
      continue;
    }
    let byPrecision = graphs.get(parsed.role);
    if (!byPrecision) graphs.set(parsed.role, (byPrecision = new Map()));
    byPrecision.set(parsed.precision, `onnx/${name}`);
  }
  return { dir, graphs, others, files };
}

/** The precisions every graph of `roles` offers (what the user can pick). */
export function availablePrecisions(layout: OnnxFolderLayout, roles: readonly GraphRole[]): Precision[] {
  return PRECISIONS.filter((p) => roles.every((r) => layout.graphs.get(r)?.has(p)));
}

/**
 * The file of each role at the chosen precision: fp32 when the folder has it and none was asked for; a precision the
 * folder lacks is an error listing the choices.
 */
export function pickPrecision(layout: OnnxFolderLayout, roles: readonly GraphRole[], asked: string | undefined): { precision: Precision; files: Record<string, string> } {
  const choices = availablePrecisions(layout, roles);
  const list = () => choices.map((p) => `${p} (${roles.map((r) => `onnx/${r}${PRECISION_SUFFIX[p]}.onnx`).join(' + ')})`).join(', ');
  if (choices.length === 0) {
    const have = [...layout.graphs.entries()].flatMap(([, m]) => [...m.values()]).join(', ');
    throw new OnnxFolderError(`${layout.dir}: no precision has every graph needed (${roles.map((r) => `onnx/${r}*.onnx`).join(' + ')}); the folder has ${have || 'none'}`);
  }
  const alias = asked === 'quantized' ? 'q8' : asked;
  let precision: Precision;
  if (alias === undefined) precision = choices.includes('fp32') ? 'fp32' : choices[0];
  else if ((PRECISIONS as string[]).includes(alias) && choices.includes(alias as Precision)) precision = alias as Precision;
  else throw new OnnxFolderError(`--precision ${asked}: the folder offers ${list()}`);
  const files: Record<string, string> = {};
  for (const r of roles) files[r] = layout.graphs.get(r)!.get(precision)!;
  return { precision, files };
}
