// The JSON files of an ONNX folder, read through zod: config.json (what Composer needs of it: the class, the
// context length, a VLM's image token), generation_config.json, tokenizer_config.json and preprocessor_config.json
// (the Hugging Face schemas, shared with electron/formats/hf/). Every bad value is an error naming the file and field.

import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { z } from 'zod';
import {
  type GenerationConfig,
  type PreprocessorConfig,
  type TokenizerConfig,
  generationConfigSchema,
  parseConfig,
  preprocessorConfigSchema,
  tokenizerConfigSchema,
} from '../hf/configs.js';
import { OnnxFolderError } from './layout.js';

const MAX_JSON_BYTES = 64 * 1024 * 1024;
const positiveInt = z.number().int().positive();

/** The text model's fields Composer reads (a VLM keeps them under text_config). */
const textConfigSchema = z.looseObject({
  model_type: z.string().min(1).optional(),
  max_position_embeddings: positiveInt.optional(),
  n_positions: positiveInt.optional(),
  eos_token_id: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullish(),
});

export const onnxConfigSchema = z.looseObject({
  model_type: z.string().min(1, 'must name the model type'),
  architectures: z.array(z.string()).optional(),
  max_position_embeddings: positiveInt.optional(),
  n_positions: positiveInt.optional(),
  eos_token_id: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullish(),
  /** LLaVA-style VLMs: the id whose positions receive the image features. */
  image_token_index: z.number().int().nonnegative().optional(),
  image_token_id: z.number().int().nonnegative().optional(),
  text_config: textConfigSchema.optional(),
});
export type OnnxConfig = z.output<typeof onnxConfigSchema>;

export interface OnnxFolderConfigs {
  config: OnnxConfig;
  generation?: GenerationConfig;
  tokenizerConfig?: TokenizerConfig;
  preprocessor?: PreprocessorConfig;
  /** Absolute path of tokenizer.json (inside the folder). */
  tokenizerJson?: string;
}

/** A file of the folder by its relative name; a symlink leading out of the folder is refused naming it. */
export function fileInFolder(dir: string, rel: string): string | undefined {
  const path = join(dir, rel);
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return undefined;
  }
  const root = realpathSync(dir);
  const r = relative(root, real);
  if (r.startsWith('..') || r.startsWith(sep) || r === '') throw new OnnxFolderError(`${rel}: leads out of the model's folder (${real})`);
  return real;
}

function readJson(dir: string, rel: string): unknown | undefined {
  const path = fileInFolder(dir, rel);
  if (!path) return undefined;
  if (statSync(path).size > MAX_JSON_BYTES) throw new OnnxFolderError(`${rel}: larger than ${MAX_JSON_BYTES} bytes, not a config file`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new OnnxFolderError(`${rel}: not valid JSON (${(e as Error).message})`);
  }
}

function parsed<T extends z.ZodType>(schema: T, dir: string, rel: string): z.output<T> | undefined {
  const value = readJson(dir, rel);
  if (value === undefined) return undefined;
  const r = parseConfig(schema, value, rel);
  if (!r.ok) throw new OnnxFolderError(r.message);
  return r.value;
}

export function readOnnxConfigs(dir: string): OnnxFolderConfigs {
  const config = parsed(onnxConfigSchema, dir, 'config.json');
  if (!config) throw new OnnxFolderError(`config.json: missing from ${dir} (an ONNX model folder needs its config)`);
  const tokenizerConfig = parsed(tokenizerConfigSchema, dir, 'tokenizer_config.json');
  return {
    config,
    generation: parsed(generationConfigSchema, dir, 'generation_config.json'),
    tokenizerConfig,
    preprocessor: parsed(preprocessorConfigSchema, dir, 'preprocessor_config.json'),
    tokenizerJson: fileInFolder(dir, 'tokenizer.json'),
  };
}

/** The context length of the (text) config, if it says. */
export function maxPositionsOf(c: OnnxConfig): number | undefined {
  const t = c.text_config;
  return t?.max_position_embeddings ?? t?.n_positions ?? c.max_position_embeddings ?? c.n_positions;
}

/** eos ids: generation_config.json, else config.json (text_config for a VLM). */
export function eosIdsOf(configs: OnnxFolderConfigs): number[] | undefined {
  const raw = configs.generation?.eos_token_id ?? configs.config.text_config?.eos_token_id ?? configs.config.eos_token_id;
  if (raw === undefined || raw === null) return undefined;
  return Array.isArray(raw) ? raw : [raw];
}
