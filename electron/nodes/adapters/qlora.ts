// QLoRA: the frozen base weights are stored NF4 (block 64, double-quantised absmax) and dequantised in the graph;
// LoRA branches (float32) train on top. Gradients reach the activations through the dequantised weight but never
// the packed codes (uint8 constants).

import { z } from 'zod';
import { GraphBuilder } from '../../onnx/builder.js';
import type { OnnxFragment } from '../types.js';
import { type AdapterResult, type ApplyOptions, checkOpset, cloneFragment, parseConfig } from './common.js';
import { type LoraInfo, addLoraModules, loraConfigSchema } from './lora.js';
import { NF4_BLOCKSIZE, replaceWithNf4 } from './nf4.js';
import { selectTargets } from './targets.js';

export const qloraConfigSchema = loraConfigSchema.extend({
  // artidoro/qlora finetune_guanaco_7b.sh: r 64, alpha 16, dropout 0.1.
  r: z.number().int().positive().default(64),
  lora_alpha: z.number().positive().default(16),
  lora_dropout: z.number().min(0).max(0.99).default(0.1),
  quant_type: z.literal('nf4').default('nf4'),
  blocksize: z.number().int().min(16).max(4096).default(NF4_BLOCKSIZE),
  double_quant: z.boolean().default(true),
  /** Which base weights to quantise: every linear layer except the output head (QLoRA), or only the targets. */
  quantize_modules: z.enum(['all-linear', 'targets']).default('all-linear'),
});

export const QLORA_CONFIG_DOCS: Record<string, string> = {
  quant_type: "Base weight format: 'nf4' (4-bit NormalFloat).",
  blocksize: 'Weights per absmax block (64 in QLoRA).',
  double_quant: 'Quantise the absmax constants to 8 bits in blocks of 256 (mean-subtracted).',
  quantize_modules: "'all-linear' (every linear layer but the output head, as QLoRA) or 'targets' (only the LoRA targets).",
};

export interface QloraInfo extends LoraInfo {
  /** Base weights now stored NF4. */
  quantized: string[];
}

export function applyQlora(fragment: OnnxFragment, config: unknown, seed: number, options: ApplyOptions = {}): AdapterResult<QloraInfo> {
  const what = options.what ?? 'qlora adapter';
  const cfg = parseConfig(qloraConfigSchema, config, what);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const b = new GraphBuilder(out.graph);
  const selected = selectTargets(out.graph, cfg, what);
  const toQuantize =
    cfg.quantize_modules === 'targets'
      ? selected
      : selectTargets(out.graph, { target_modules: 'all-linear', exclude_modules: cfg.exclude_modules }, what);
  const quantized: string[] = [];
  for (const layers of toQuantize.values()) {
    const { weightName, layout } = layers[0];
    if (quantized.includes(weightName)) continue;
    replaceWithNf4(b, weightName, layout, { blocksize: cfg.blocksize, doubleQuant: cfg.double_quant });
    quantized.push(weightName);
  }
  const { modules, trainable } = addLoraModules(b, selected, cfg, seed, options, what);
  out.weights = out.weights.filter((w) => !quantized.includes(w)).concat(trainable);
  return { fragment: out, trainable, info: { method: 'qlora', config: cfg, modules, quantized } };
}
