// PEFT file format: `adapter_model.safetensors` + `adapter_config.json`, as huggingface/peft save_pretrained writes
// them (keys `base_model.model.<module>.lora_A.weight`, the adapter name removed), read back into adapter specs and
// weights; and merged-model export for LoRA.
//
// Prompt-learning methods save one table `prompt_embeddings` (peft get_prompt_embedding_to_save): the output of the
// prompt encoder (prefix MLP, P-tuning MLP/LSTM) evaluated once. Reading it back gives the inference-time adapter
// (prefix → P-tuning v2 table, P-tuning → prompt tuning table), as peft does in inference mode.
// Bottleneck adapters and LoRA-MoE are not peft methods: they are written in the same layout with peft_type
// 'COMPOSER_BOTTLENECK' / 'COMPOSER_LORA_MOE'. The exact Composer spec travels in the safetensors metadata.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../onnx/atomic.js';
import { type Graph, type Tensor, emptyGraph, newModel, producers } from '../../onnx/ir.js';
import { runModel } from '../../onnx/ort.js';
import { saveModel } from '../../onnx/proto.js';
import { readSafetensors, serializeSafetensors } from '../../onnx/safetensors.js';
import type { OnnxFragment } from '../types.js';
import { AdapterError, type AdapterResult } from './common.js';
import type { Ia3Info } from './ia3.js';
import { type AdapterMethodName, type AdapterSpecInput, ADAPTER_METHODS } from './index.js';
import { type LoraInfo, mergeLora } from './lora.js';
import type { PrefixInfo } from './prefix.js';
import type { PromptInfo } from './prompt.js';

export const ADAPTER_MODEL_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
const SPEC_METADATA_KEY = 'composer.adapter';

export interface PeftExportOptions {
  /** peft task_type (default CAUSAL_LM). */
  taskType?: string;
  baseModelNameOrPath?: string | null;
  /** Prepended to module paths in the keys, e.g. 'model.decoder.' for an HF OPT checkpoint. */
  modulePrefix?: string;
  /**
   * Our weight name of an adapted layer ('model.layers.0.self_attn.q_proj.weight') → the module's state-dict name in
   * the model the adapter is for (an HF export's names), so PEFT finds the layer there; applied before modulePrefix.
   */
  moduleWeightName?: (ours: string) => string;
}

/** An adapter tensor name with its module part renamed ('<module>.lora_A.default.weight' → '<renamed>.lora_A…'). */
function renameModule(name: string, rename: ((ours: string) => string) | undefined): string {
  if (!rename) return name;
  const at = name.search(/\.(lora_[AB]|lora_magnitude_vector|ia3_l)(\.|$)/);
  if (at < 0) return name;
  return `${rename(`${name.slice(0, at)}.weight`).replace(/\.weight$/, '')}${name.slice(at)}`;
}

export interface PeftFiles {
  config: Record<string, unknown>;
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

const KEY_PREFIX = 'base_model.model.';

/** Our initializer name → peft key (drops the '.default' adapter name). */
export function peftKey(name: string, modulePrefix = ''): string {
  return `${KEY_PREFIX}${modulePrefix}${name.replace(/\.default(?=\.|$)/, '')}`;
}

/** Evaluates a value that depends only on initializers (the prompt table) with a small ORT model. */
async function evaluateConstant(graph: Graph, value: string): Promise<Tensor> {
  if (graph.initializers.has(value)) return graph.initializers.get(value)!;
  const prod = producers(graph);
  const sub = emptyGraph('prompt_table');
  const seen = new Set<string>();
  const stack = [value];
  const nodes = new Set<Graph['nodes'][number]>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v) || !v) continue;
    seen.add(v);
    const init = graph.initializers.get(v);
    if (init) {
      sub.initializers.set(v, init);
      continue;
    }
    const p = prod.get(v);
    if (!p) throw new AdapterError(`the prompt table '${value}' depends on graph input '${v}'`);
    nodes.add(p);
    stack.push(...p.inputs);
  }
  sub.nodes = graph.nodes.filter((n) => nodes.has(n));
  sub.outputs.push({ name: value, dtype: 'float32', shape: null });
  const out = await runModel(newModel(sub, 17), {});
  return out[value];
}

function commonConfig(peftType: string, opts: PeftExportOptions): Record<string, unknown> {
  return {
    peft_type: peftType,
    task_type: opts.taskType ?? 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    revision: null,
    inference_mode: true,
  };
}

function targetList(configured: unknown, modules: string[]): unknown {
  return configured ?? [...new Set(modules)].sort();
}

/** The two peft files of one applied adapter, in memory. */
export async function peftFiles(method: AdapterMethodName, result: AdapterResult, opts: PeftExportOptions = {}): Promise<PeftFiles> {
  const g = result.fragment.graph;
  const tensors = new Map<string, Tensor>();
  const prefix = opts.modulePrefix ?? '';
  const own = () => {
    for (const name of result.trainable) tensors.set(peftKey(renameModule(name, opts.moduleWeightName), prefix), g.initializers.get(name)!);
  };
  let config: Record<string, unknown>;
  let spec: { method: AdapterMethodName; config: unknown } = { method, config: (result.info as { config: unknown }).config };
  switch (method) {
    case 'lora':
    case 'qlora': {
      const info = result.info as LoraInfo;
      const c = info.config;
      own();
      config = {
        ...commonConfig('LORA', opts),
        r: c.r, lora_alpha: c.lora_alpha, lora_dropout: c.lora_dropout, bias: c.bias, use_rslora: c.use_rslora, use_dora: false,
        init_lora_weights: c.init_lora_weights, fan_in_fan_out: false, modules_to_save: null,
        target_modules: targetList(c.target_modules, info.modules.map((m) => m.module)), exclude_modules: c.exclude_modules ?? null,
        layers_to_transform: c.layers_to_transform ?? null, layers_pattern: c.layers_pattern ?? null,
        rank_pattern: c.rank_pattern, alpha_pattern: c.alpha_pattern,
      };
      break;
    }
    case 'ia3': {
      const info = result.info as Ia3Info;
      own();
      config = {
        ...commonConfig('IA3', opts),
        target_modules: targetList(info.config.target_modules, info.modules.map((m) => m.module)),
        feedforward_modules: info.modules.filter((m) => m.feedforward).map((m) => m.module),
        fan_in_fan_out: false, init_ia3_weights: true, modules_to_save: null,
      };
      break;
    }
    case 'prefix':
    case 'ptuning-v2': {
      const info = result.info as PrefixInfo;
      tensors.set('prompt_embeddings', await evaluateConstant(g, info.table));
      config = {
        ...commonConfig('PREFIX_TUNING', opts),
        num_virtual_tokens: info.config.num_virtual_tokens, token_dim: info.tokenDim, num_transformer_submodules: 1,
        num_attention_heads: info.numHeads, num_layers: info.numLayers,
        encoder_hidden_size: info.config.encoder_hidden_size ?? info.tokenDim, prefix_projection: info.config.prefix_projection,
      };
      break;
    }
    case 'prompt':
    case 'ptuning': {
      const info = result.info as PromptInfo;
      tensors.set('prompt_embeddings', await evaluateConstant(g, info.table));
      const c = info.config as Record<string, unknown>;
      config =
        method === 'prompt'
          ? {
              ...commonConfig('PROMPT_TUNING', opts), num_virtual_tokens: c.num_virtual_tokens, token_dim: info.tokenDim, num_transformer_submodules: 1,
              prompt_tuning_init: String(c.prompt_tuning_init).toUpperCase(), prompt_tuning_init_text: c.prompt_tuning_init_text ?? null, tokenizer_name_or_path: null,
            }
          : {
              ...commonConfig('P_TUNING', opts), num_virtual_tokens: c.num_virtual_tokens, token_dim: info.tokenDim, num_transformer_submodules: 1,
              encoder_reparameterization_type: c.encoder_reparameterization_type, encoder_hidden_size: c.encoder_hidden_size ?? info.tokenDim,
              encoder_num_layers: c.encoder_num_layers, encoder_dropout: c.encoder_dropout,
            };
      break;
    }
    case 'adapter':
    case 'lora-moe':
      own();
      config = { ...commonConfig(method === 'adapter' ? 'COMPOSER_BOTTLENECK' : 'COMPOSER_LORA_MOE', opts), ...(spec.config as object) };
      break;
  }
  return { config, tensors, metadata: { format: 'pt', [SPEC_METADATA_KEY]: JSON.stringify({ ...spec, modulePrefix: prefix }) } };
}

/** Writes adapter_model.safetensors and adapter_config.json into `dir` (atomically). */
export async function savePeftAdapter(dir: string, method: AdapterMethodName, result: AdapterResult, opts: PeftExportOptions = {}): Promise<PeftFiles> {
  const files = await peftFiles(method, result, opts);
  writeFileAtomic(join(dir, ADAPTER_MODEL_FILE), serializeSafetensors(files.tensors, files.metadata));
  writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), `${JSON.stringify(files.config, null, 2)}\n`);
  return files;
}

const peftConfigSchema = z.looseObject({ peft_type: z.string().min(1) });
const specMetadataSchema = z.object({ method: z.enum(ADAPTER_METHODS), config: z.record(z.string(), z.unknown()), modulePrefix: z.string().default('') });

export interface LoadedPeftAdapter {
  /** The adapter to apply (with `weights` as ApplyOptions.weights). */
  spec: Omit<AdapterSpecInput, 'id'>;
  weights: Map<string, Tensor>;
  config: Record<string, unknown>;
}

/**
 * Reads a peft adapter folder into a Composer adapter spec and its weights (our initializer names). Files written by
 * Composer carry their exact spec; plain peft files are mapped from adapter_config.json.
 */
export function readPeftAdapter(dir: string, opts: { modulePrefix?: string } = {}): LoadedPeftAdapter {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new AdapterError(`cannot read '${configPath}': ${(e as Error).message}`);
  }
  const parsed = peftConfigSchema.safeParse(raw);
  if (!parsed.success) throw new AdapterError(`'${configPath}': field 'peft_type' is missing or not a string`);
  const config = parsed.data as Record<string, unknown> & { peft_type: string };
  const st = readSafetensors(join(dir, ADAPTER_MODEL_FILE));
  const metaRaw = st.metadata[SPEC_METADATA_KEY];
  const meta = metaRaw ? specMetadataSchema.safeParse(JSON.parse(metaRaw)) : undefined;
  if (meta && !meta.success) throw new AdapterError(`'${dir}/${ADAPTER_MODEL_FILE}': metadata '${SPEC_METADATA_KEY}' is invalid`);
  const modulePrefix = opts.modulePrefix ?? (meta?.success ? meta.data.modulePrefix : '');
  const strip = (key: string): string => {
    const lead = `${KEY_PREFIX}${modulePrefix}`;
    if (!key.startsWith(lead)) throw new AdapterError(`'${dir}/${ADAPTER_MODEL_FILE}': key '${key}' does not start with '${lead}'`);
    return key.slice(lead.length);
  };
  const weights = new Map<string, Tensor>();
  const table = st.tensors.get('prompt_embeddings');
  const promptLearning = ['PREFIX_TUNING', 'PROMPT_TUNING', 'P_TUNING'].includes(config.peft_type);
  if (promptLearning) {
    if (!table) throw new AdapterError(`'${dir}/${ADAPTER_MODEL_FILE}': no tensor 'prompt_embeddings'`);
    weights.set('prompt_encoder.default.embedding.weight', table);
    const P = table.dims[0];
    const spec: LoadedPeftAdapter['spec'] =
      config.peft_type === 'PREFIX_TUNING'
        ? { method: 'ptuning-v2', config: { num_virtual_tokens: P, prefix_projection: false } }
        : { method: 'prompt', config: { num_virtual_tokens: P, ...(meta?.success ? pickIo(meta.data.config) : {}) } };
    return { spec, weights, config };
  }
  for (const [key, t] of st.tensors) {
    const name = strip(key);
    // Put the adapter name back: lora_A.weight → lora_A.default.weight, ia3_l → ia3_l.default, adapter.x → adapter.default.x.
    const ours = name
      .replace(/\.(lora_A|lora_B)\.weight$/, '.$1.default.weight')
      .replace(/\.ia3_l$/, '.ia3_l.default')
      .replace(/\.lora_router\.weight$/, '.lora_router.default.weight')
      .replace(/\.adapter\.(adapter_(?:down|up))/, '.adapter.default.$1');
    weights.set(ours, t);
  }
  if (meta?.success) return { spec: { method: meta.data.method, config: meta.data.config }, weights, config };
  switch (config.peft_type) {
    case 'LORA':
      return {
        spec: {
          method: 'lora',
          config: dropNulls({
            r: config.r, lora_alpha: config.lora_alpha, lora_dropout: config.lora_dropout, use_rslora: config.use_rslora,
            target_modules: config.target_modules, exclude_modules: config.exclude_modules, layers_to_transform: config.layers_to_transform,
            layers_pattern: config.layers_pattern, rank_pattern: config.rank_pattern, alpha_pattern: config.alpha_pattern,
          }),
        },
        weights,
        config,
      };
    case 'IA3':
      return { spec: { method: 'ia3', config: dropNulls({ target_modules: config.target_modules, feedforward_modules: config.feedforward_modules }) }, weights, config };
    default:
      throw new AdapterError(`'${configPath}': peft_type '${config.peft_type}' is not supported (LORA, IA3, PREFIX_TUNING, PROMPT_TUNING, P_TUNING are)`);
  }
}

function pickIo(config: Record<string, unknown>): Record<string, unknown> {
  const keys = ['embeds_input', 'mask_input', 'position_input', 'strip_virtual_tokens'];
  return Object.fromEntries(Object.entries(config).filter(([k]) => keys.includes(k)));
}

function dropNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined && !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0)));
}

/** LoRA folded into the base weights, as a plain ONNX model file (the merged export). */
export function saveMergedModel(path: string, result: AdapterResult<LoraInfo>): OnnxFragment {
  const merged = mergeLora(result);
  saveModel(path, newModel(merged.graph, merged.opset));
  return merged;
}
