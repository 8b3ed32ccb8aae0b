// LoRA (Hu et al. 2021, as huggingface/peft implements it): y = base(x) + (dropout(x)·Aᵀ·Bᵀ)·scale with
// A [r, in] Kaiming-uniform (a = √5), B [out, r] zeros (the adapter starts as the identity), scale = α/r (α/√r with
// rsLoRA). Merge folds scale·B·A into the base weight in its own layout; unmerge subtracts it again.

import { z } from 'zod';
import { GraphBuilder } from '../../onnx/builder.js';
import type { Tensor } from '../../onnx/ir.js';
import type { OnnxFragment } from '../types.js';
import {
  AdapterError,
  type AdapterResult,
  type ApplyOptions,
  addWeight,
  checkOpset,
  cloneFragment,
  floatData,
  floatTensor,
  intercept,
  parseConfig,
} from './common.js';
import { type LinearLayer, type WeightLayout, selectTargets, targetFields } from './targets.js';

export const loraConfigSchema = z.strictObject({
  ...targetFields,
  r: z.number().int().positive().default(8),
  lora_alpha: z.number().positive().default(8),
  lora_dropout: z.number().min(0).max(0.99).default(0),
  use_rslora: z.boolean().default(false),
  /** true: A Kaiming-uniform, B zeros (PEFT default); 'gaussian': A ~ N(0, 1/r), B zeros. */
  init_lora_weights: z.union([z.boolean(), z.literal('gaussian')]).default(true),
  /** Only 'none' (PEFT's default): LoRA adds no bias. */
  bias: z.literal('none').default('none'),
  /** Per-module rank / alpha overrides; keys are regexes matched as PEFT does: (.*\.)?(key)$. */
  rank_pattern: z.record(z.string(), z.number().int().positive()).default({}),
  alpha_pattern: z.record(z.string(), z.number().positive()).default({}),
});
export type LoraConfig = z.output<typeof loraConfigSchema>;

export const LORA_CONFIG_DOCS: Record<keyof LoraConfig, string> = {
  target_modules: "Modules to adapt: a list of name suffixes, a regex (full match) or 'all-linear'. Default: the family's q/v projections.",
  exclude_modules: 'Modules never adapted (same matching rules).',
  layers_to_transform: 'Only adapt these layer indices.',
  layers_pattern: "Name of the layer list ('layers', 'h') where the index is read.",
  family: "Architecture family for the default targets ('auto' guesses from the module names).",
  r: 'Rank of the update.',
  lora_alpha: 'Scale numerator: the update is multiplied by alpha/r (alpha/√r with rsLoRA).',
  lora_dropout: 'Dropout on the LoRA branch input (training graphs only).',
  use_rslora: 'Rank-stabilised scaling alpha/√r.',
  init_lora_weights: "A's init: true = Kaiming-uniform (PEFT), 'gaussian' = N(0, 1/r); B is zero either way.",
  bias: "Only 'none' is supported.",
  rank_pattern: 'Regex → rank overrides per module.',
  alpha_pattern: 'Regex → alpha overrides per module.',
};

/** Where one LoRA branch sits, so merge can take it out again. */
export interface LoraSite {
  /** The layer result the branch adds to (its readers are unchanged). */
  output: string;
  /** The renamed base result. */
  baseOutput: string;
}

export interface LoraModuleInfo {
  module: string;
  weightName: string;
  layout: WeightLayout;
  inFeatures: number;
  outFeatures: number;
  r: number;
  alpha: number;
  scale: number;
  loraA: string;
  loraB: string;
  sites: LoraSite[];
  /** Nodes the rewrite added (removed again by merge). */
  nodes: string[];
  /** Constants the rewrite added. */
  constants: string[];
}

export interface LoraInfo {
  method: 'lora' | 'qlora';
  config: LoraConfig;
  modules: LoraModuleInfo[];
}

/** PEFT get_pattern_key: the first pattern key whose regex matches the end of the module path. */
export function patternValue<T>(patterns: Record<string, T>, module: string): T | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(module)) return value;
  }
  return undefined;
}

export function loraScale(alpha: number, r: number, rslora: boolean): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** Adds `dropout(x)·Aᵀ·Bᵀ` (times scale); returns the branch value. Dropout only when training and p > 0. */
export function loraBranch(b: GraphBuilder, x: string, loraA: string, loraB: string, scale: number, dropout: number, training: boolean): string {
  let input = x;
  if (training && dropout > 0) {
    [input] = b.opN('Dropout', [x, b.scalar(dropout), b.constant('bool', [], [1], 'training_mode')], {}, 2);
  }
  const h = b.matmul(input, b.transpose(loraA, [1, 0]));
  const u = b.matmul(h, b.transpose(loraB, [1, 0]));
  return scale === 1 ? u : b.mul(u, b.scalar(scale));
}

/** Applies LoRA to a module's sites with existing A/B initializers; returns the added node names. */
export function attachLora(
  b: GraphBuilder,
  layers: LinearLayer[],
  loraA: string,
  loraB: string,
  scale: number,
  dropout: number,
  training: boolean,
): { sites: LoraSite[]; nodes: string[]; constants: string[] } {
  const before = new Set(b.graph.nodes.map((n) => n.name));
  const initsBefore = new Set(b.graph.initializers.keys());
  const sites: LoraSite[] = [];
  for (const layer of layers) {
    const baseOutput = intercept(b, layer.output);
    const branch = loraBranch(b, layer.input, loraA, loraB, scale, dropout, training);
    b.op('Add', [baseOutput, branch], {}, { outputs: [layer.output], name: `${layer.module}.lora_add` });
    sites.push({ output: layer.output, baseOutput });
  }
  const nodes = b.graph.nodes.filter((n) => !before.has(n.name)).map((n) => n.name);
  const constants = [...b.graph.initializers.keys()].filter((k) => !initsBefore.has(k) && k !== loraA && k !== loraB);
  return { sites, nodes, constants };
}

/** Resolves rank/alpha/scale for one module. */
export function moduleRank(cfg: LoraConfig, module: string): { r: number; alpha: number; scale: number } {
  const r = patternValue(cfg.rank_pattern, module) ?? cfg.r;
  const alpha = patternValue(cfg.alpha_pattern, module) ?? cfg.lora_alpha;
  return { r, alpha, scale: loraScale(alpha, r, cfg.use_rslora) };
}

/** Adds A [r,in] and B [out,r] for a module (PEFT names, adapter 'default'). */
export function addLoraWeights(
  b: GraphBuilder,
  module: string,
  inF: number,
  outF: number,
  r: number,
  init: LoraConfig['init_lora_weights'],
  seed: number,
  options: ApplyOptions,
  what: string,
  adapterName = 'default',
): { loraA: string; loraB: string } {
  const aInit = init === 'gaussian' ? ({ kind: 'normal', std: 1 / r } as const) : ({ kind: 'kaiming', fanIn: inF } as const);
  const loraA = addWeight(b, `${module}.lora_A.${adapterName}.weight`, [r, inF], aInit, seed, options, what);
  // init_lora_weights=false (debugging): B random too, so the adapter is not the identity.
  const bInit = init === false ? ({ kind: 'kaiming', fanIn: r } as const) : ({ kind: 'zeros' } as const);
  const loraB = addWeight(b, `${module}.lora_B.${adapterName}.weight`, [outF, r], bInit, seed, options, what);
  return { loraA, loraB };
}

/** Adds a LoRA branch (A, B, scale, dropout) to every selected module; shared by LoRA and QLoRA. */
export function addLoraModules(
  b: GraphBuilder,
  selected: ReturnType<typeof selectTargets>,
  cfg: LoraConfig,
  seed: number,
  options: ApplyOptions,
  what: string,
): { modules: LoraModuleInfo[]; trainable: string[] } {
  const modules: LoraModuleInfo[] = [];
  const trainable: string[] = [];
  for (const [module, layers] of selected) {
    const first = layers[0];
    const { r, alpha, scale } = moduleRank(cfg, module);
    const { loraA, loraB } = addLoraWeights(b, module, first.inFeatures, first.outFeatures, r, cfg.init_lora_weights, seed, options, what);
    const attached = attachLora(b, layers, loraA, loraB, scale, cfg.lora_dropout, options.training ?? false);
    trainable.push(loraA, loraB);
    modules.push({
      module, weightName: first.weightName, layout: first.layout, inFeatures: first.inFeatures, outFeatures: first.outFeatures,
      r, alpha, scale, loraA, loraB, ...attached,
    });
  }
  return { modules, trainable };
}

/** LoRA on every selected linear layer. */
export function applyLora(fragment: OnnxFragment, config: unknown, seed: number, options: ApplyOptions = {}): AdapterResult<LoraInfo> {
  const what = options.what ?? 'lora adapter';
  const cfg = parseConfig(loraConfigSchema, config, what);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const b = new GraphBuilder(out.graph);
  const selected = selectTargets(out.graph, cfg, what);
  const { modules, trainable } = addLoraModules(b, selected, cfg, seed, options, what);
  out.weights.push(...trainable);
  return { fragment: out, trainable, info: { method: 'lora', config: cfg, modules } };
}

/** scale·B·A laid out like the base weight: [out,in] for 'out_in', its transpose for 'in_out'. */
export function loraDelta(loraA: Tensor, loraB: Tensor, scale: number, layout: WeightLayout): Float32Array {
  const [r, inF] = loraA.dims;
  const [outF, rB] = loraB.dims;
  if (rB !== r) throw new AdapterError(`LoRA B [${loraB.dims}] and A [${loraA.dims}] disagree on the rank`);
  const a = floatData(loraA, 'lora_A');
  const bw = floatData(loraB, 'lora_B');
  const delta = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let k = 0; k < r; k++) {
      const s = bw[o * r + k] * scale;
      if (s === 0) continue;
      for (let i = 0; i < inF; i++) {
        const at = layout === 'out_in' ? o * inF + i : i * outF + o;
        delta[at] += s * a[k * inF + i];
      }
    }
  }
  return delta;
}

function addDelta(w: Tensor, delta: Float32Array, sign: 1 | -1, what: string): Tensor {
  const base = floatData(w, what);
  if (base.length !== delta.length) throw new AdapterError(`${what}: base weight has ${base.length} values, the LoRA update ${delta.length}`);
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) out[i] = base[i] + sign * delta[i];
  return floatTensor(w.dims, out);
}

/**
 * Folds every LoRA update into its base weight (W' = W + scale·B·A) and removes the branches: the result has the
 * original graph structure and can be exported as a plain model. A quantised base (QLoRA) must be dequantised first.
 */
export function mergeLora(result: AdapterResult<LoraInfo>): OnnxFragment {
  const out = cloneFragment(result.fragment);
  const g = out.graph;
  const removed = new Set<string>();
  const dropInits = new Set<string>();
  for (const m of result.info.modules) {
    const w = g.initializers.get(m.weightName);
    if (!w) {
      throw new AdapterError(
        `cannot merge LoRA into '${m.weightName}': the base weight is not a float initializer (NF4-quantised?); dequantise it first`,
      );
    }
    const a = g.initializers.get(m.loraA);
    const bw = g.initializers.get(m.loraB);
    if (!a || !bw) throw new AdapterError(`cannot merge LoRA of '${m.module}': '${m.loraA}' or '${m.loraB}' is missing`);
    g.initializers.set(m.weightName, addDelta(w, loraDelta(a, bw, m.scale, m.layout), 1, `merge into '${m.weightName}'`));
    for (const n of m.nodes) removed.add(n);
    for (const c of [m.loraA, m.loraB, ...m.constants]) dropInits.add(c);
  }
  g.nodes = g.nodes.filter((n) => !removed.has(n.name));
  const rename = new Map(result.info.modules.flatMap((m) => m.sites.map((s) => [s.baseOutput, s.output] as const)));
  for (const n of g.nodes) n.outputs = n.outputs.map((o) => rename.get(o) ?? o);
  for (const c of dropInits) if (!g.nodes.some((n) => n.inputs.includes(c))) g.initializers.delete(c);
  out.weights = out.weights.filter((w) => g.initializers.has(w));
  return out;
}

/** The inverse of mergeLora: subtracts scale·B·A from each base weight of a merged fragment. */
export function unmergeLora(merged: OnnxFragment, info: LoraInfo, loraWeights: Map<string, Tensor>): OnnxFragment {
  const out = cloneFragment(merged);
  for (const m of info.modules) {
    const w = out.graph.initializers.get(m.weightName);
    const a = loraWeights.get(m.loraA);
    const bw = loraWeights.get(m.loraB);
    if (!w) throw new AdapterError(`cannot unmerge LoRA: base weight '${m.weightName}' is not in the fragment`);
    if (!a || !bw) throw new AdapterError(`cannot unmerge LoRA of '${m.module}': weights '${m.loraA}' / '${m.loraB}' not given`);
    out.graph.initializers.set(m.weightName, addDelta(w, loraDelta(a, bw, m.scale, m.layout), -1, `unmerge from '${m.weightName}'`));
  }
  return out;
}
