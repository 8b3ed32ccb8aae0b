// Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021), as adapter-hub places them:
//   h' = h + up(act(down(h)))   on the output of a sublayer, before its residual add
// Houlsby: after the attention output projection and after the FFN output; Pfeiffer: after the FFN only.
// down: Kaiming-uniform (adapter-hub 'mam_adapter' init), up: zeros, so the adapter is exactly the identity at init.

import { z } from 'zod';
import { GraphBuilder } from '../../onnx/builder.js';
import type { OnnxFragment } from '../types.js';
import { type Activation, activation } from '../blocks.js';
import { AdapterError, type AdapterResult, type ApplyOptions, addWeight, checkOpset, cloneFragment, intercept, parseConfig } from './common.js';
import { type LinearLayer, type TargetModules, detectFamily, findLinearLayers, moduleMatches, targetModulesSchema } from './targets.js';

/** Sublayer output projections per family: attention output and FFN output. */
export const ATTN_OUTPUT_MODULES: Record<string, string[]> = {
  llama: ['self_attn.o_proj'],
  opt: ['self_attn.out_proj'],
  gpt2: ['attn.c_proj'],
  bert: ['attention.output.dense'],
  clip: ['self_attn.out_proj'],
};
export const FFN_OUTPUT_MODULES: Record<string, string[]> = {
  llama: ['mlp.down_proj'],
  opt: ['fc2'],
  gpt2: ['mlp.c_proj'],
  bert: ['output.dense'],
  clip: ['mlp.fc2'],
};

export const bottleneckConfigSchema = z.strictObject({
  placement: z.enum(['houlsby', 'pfeiffer']).default('pfeiffer'),
  reduction_factor: z.number().positive().default(16),
  /** Default: swish for Houlsby, relu for Pfeiffer (adapter-hub). */
  non_linearity: z.enum(['relu', 'silu', 'gelu', 'tanh']).optional(),
  /** Attention output projections (Houlsby); default per family. */
  attn_output_modules: targetModulesSchema.optional(),
  /** FFN output projections; default per family. */
  ffn_output_modules: targetModulesSchema.optional(),
  family: z.enum(['auto', 'llama', 'opt', 'gpt2', 'bert', 'clip']).default('auto'),
});
export type BottleneckConfig = z.output<typeof bottleneckConfigSchema>;

export const BOTTLENECK_CONFIG_DOCS: Record<keyof BottleneckConfig, string> = {
  placement: "'houlsby' (after attention and FFN) or 'pfeiffer' (after the FFN only).",
  reduction_factor: 'Bottleneck width = model width / reduction_factor.',
  non_linearity: 'Activation between down and up projection (default swish for Houlsby, relu for Pfeiffer).',
  attn_output_modules: 'Attention output projections to adapt (default per family).',
  ffn_output_modules: 'FFN output projections to adapt (default per family).',
  family: "Architecture family for the default module names ('auto' guesses).",
};

export interface BottleneckInfo {
  method: 'adapter';
  config: BottleneckConfig;
  modules: Array<{ module: string; position: 'attention' | 'ffn'; width: number; bottleneck: number }>;
}

function pick(layers: LinearLayer[], targets: TargetModules): LinearLayer[] {
  return layers.filter((l) => moduleMatches(l.module, targets));
}

export function applyBottleneck(fragment: OnnxFragment, config: unknown, seed: number, options: ApplyOptions = {}): AdapterResult<BottleneckInfo> {
  const what = options.what ?? 'bottleneck adapter';
  const cfg = parseConfig(bottleneckConfigSchema, config, what);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const layers = findLinearLayers(out.graph);
  const family = detectFamily(layers, cfg.family, FFN_OUTPUT_MODULES);
  const ffnTargets = cfg.ffn_output_modules ?? (family ? FFN_OUTPUT_MODULES[family] : undefined);
  const attnTargets = cfg.attn_output_modules ?? (family ? ATTN_OUTPUT_MODULES[family] : undefined);
  if (!ffnTargets || (cfg.placement === 'houlsby' && !attnTargets)) {
    throw new AdapterError(`${what}: cannot tell the sublayer outputs of this graph; set config fields 'ffn_output_modules' / 'attn_output_modules'`);
  }
  const attn = cfg.placement === 'houlsby' ? pick(layers, attnTargets!) : [];
  // BERT's FFN output 'output.dense' is also a suffix of 'attention.output.dense'.
  const ffn = pick(layers, ffnTargets).filter((l) => !(attnTargets && moduleMatches(l.module, attnTargets)));
  if (ffn.length === 0 && attn.length === 0) {
    throw new AdapterError(`${what}: no module matches ${JSON.stringify(ffnTargets)} (config field 'ffn_output_modules')`);
  }
  const act: Activation = cfg.non_linearity ?? (cfg.placement === 'houlsby' ? 'silu' : 'relu');
  const b = new GraphBuilder(out.graph);
  const trainable: string[] = [];
  const modules: BottleneckInfo['modules'] = [];
  for (const [position, list] of [['attention', attn], ['ffn', ffn]] as const) {
    for (const layer of list) {
      const D = layer.outFeatures;
      const bn = Math.max(1, Math.floor(D / cfg.reduction_factor));
      const p = `${layer.module}.adapter.default`;
      const down = addWeight(b, `${p}.adapter_down.weight`, [bn, D], { kind: 'kaiming', fanIn: D }, seed, options, what);
      const downB = addWeight(b, `${p}.adapter_down.bias`, [bn], { kind: 'uniform', bound: 1 / Math.sqrt(D) }, seed, options, what);
      const up = addWeight(b, `${p}.adapter_up.weight`, [D, bn], { kind: 'zeros' }, seed, options, what);
      const upB = addWeight(b, `${p}.adapter_up.bias`, [D], { kind: 'zeros' }, seed, options, what);
      trainable.push(down, downB, up, upB);
      const h = intercept(b, layer.output);
      const z = activation(b, b.add(b.matmul(h, b.transpose(down, [1, 0])), downB), act);
      const delta = b.add(b.matmul(z, b.transpose(up, [1, 0])), upB);
      b.op('Add', [h, delta], {}, { outputs: [layer.output] });
      modules.push({ module: layer.module, position, width: D, bottleneck: bn });
    }
  }
  out.weights.push(...trainable);
  return { fragment: out, trainable, info: { method: 'adapter', config: cfg, modules } };
}
