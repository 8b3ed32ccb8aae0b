// IA3 (Liu et al. 2022, peft tuners/ia3): a learned vector per target, initialised to ones (identity at init).
// Non-feed-forward targets scale their output, y' = y ⊙ l with l [out, 1]; feed-forward targets scale their input,
// y' = W(x ⊙ l) with l [1, in]. Defaults (peft utils/constants.py): keys, values and the FFN down projection.

import { z } from 'zod';
import { GraphBuilder } from '../../onnx/builder.js';
import type { OnnxFragment } from '../types.js';
import { AdapterError, type AdapterResult, type ApplyOptions, addWeight, checkOpset, cloneFragment, intercept, parseConfig } from './common.js';
import { detectFamily, findLinearLayers, moduleMatches, selectTargets, targetFields, targetModulesSchema } from './targets.js';

export const IA3_TARGETS: Record<string, string[]> = {
  llama: ['k_proj', 'v_proj', 'down_proj'],
  opt: ['k_proj', 'v_proj', 'fc2'],
  gpt2: ['c_attn', 'mlp.c_proj'],
  bert: ['key', 'value', 'output.dense'],
  t5: ['k', 'v', 'wo'],
};
export const IA3_FEEDFORWARD: Record<string, string[]> = {
  llama: ['down_proj'],
  opt: ['fc2'],
  gpt2: ['mlp.c_proj'],
  bert: ['output.dense'],
  t5: ['wo'],
};

export const ia3ConfigSchema = z.strictObject({
  ...targetFields,
  /** Targets whose input (not output) is scaled; must be a subset of the targets. Default per family. */
  feedforward_modules: targetModulesSchema.optional(),
});
export type Ia3Config = z.output<typeof ia3ConfigSchema>;

export const IA3_CONFIG_DOCS: Record<string, string> = {
  target_modules: 'Modules whose activations are rescaled (default: keys, values, FFN down projection).',
  feedforward_modules: 'Targets scaled on their input (the FFN intermediate activations).',
};

export interface Ia3Info {
  method: 'ia3';
  config: Ia3Config;
  modules: Array<{ module: string; vector: string; feedforward: boolean }>;
}

export function applyIa3(fragment: OnnxFragment, config: unknown, seed: number, options: ApplyOptions = {}): AdapterResult<Ia3Info> {
  const what = options.what ?? 'ia3 adapter';
  const cfg = parseConfig(ia3ConfigSchema, config, what);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const family = detectFamily(findLinearLayers(out.graph), cfg.family, IA3_TARGETS);
  const selected = selectTargets(out.graph, cfg, what, IA3_TARGETS);
  const ff = cfg.feedforward_modules ?? (cfg.target_modules === undefined && family ? IA3_FEEDFORWARD[family] : []);
  if (Array.isArray(ff) && ff.length === 0 && cfg.feedforward_modules !== undefined) {
    throw new AdapterError(`${what}: config field 'feedforward_modules' is empty`);
  }
  const b = new GraphBuilder(out.graph);
  const trainable: string[] = [];
  const modules: Ia3Info['modules'] = [];
  for (const [module, layers] of selected) {
    const first = layers[0];
    const feedforward = (typeof ff === 'string' || ff.length > 0) && moduleMatches(module, ff);
    const dims = feedforward ? [1, first.inFeatures] : [first.outFeatures, 1];
    const vector = addWeight(b, `${module}.ia3_l.default`, dims, { kind: 'ones' }, seed, options, what);
    trainable.push(vector);
    const flat = b.reshape(vector, [-1]);
    for (const layer of layers) {
      if (feedforward) {
        const node = out.graph.nodes.find((n) => n.name === layer.node)!;
        node.inputs[0] = b.mul(layer.input, flat);
      } else {
        const base = intercept(b, layer.output);
        b.op('Mul', [base, flat], {}, { outputs: [layer.output] });
      }
    }
    modules.push({ module, vector, feedforward });
  }
  out.weights.push(...trainable);
  return { fragment: out, trainable, info: { method: 'ia3', config: cfg, modules } };
}
