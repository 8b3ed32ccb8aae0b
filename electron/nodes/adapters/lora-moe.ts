// LoRA mixture of experts (MoLA / MixLoRA style): E LoRA experts on a target linear and a router Linear(in, E)
// choosing the top-k per token:
//   logits = x·Wrᵀ;  (_, idx) = TopK(logits, k);  g = softmax(GatherElements(logits, idx));  G = scatter(g → E)
//   y' = y + Σ_e G_e · B_e·A_e·dropout(x) · α/r
// TopK's indices carry no gradient; the gate values flow from the router through GatherElements and Softmax.
// Load balancing (Switch Transformer): aux = E · Σ_e f_e·P_e, f_e = share of the (token, slot) assignments routed
// to e, P_e = mean router probability of e over all tokens (padding included). It is a scalar graph output named
// `<module>.moe_aux_loss`; the trainer adds coef · Σ aux to the loss (info.auxLosses lists them).
// B_e = 0 at init, so the adapter starts as the identity.

import { z } from 'zod';
import { GraphBuilder } from '../../onnx/builder.js';
import { tensorFromNumbers } from '../../onnx/ir.js';
import type { OnnxFragment } from '../types.js';
import { AdapterError, type AdapterResult, type ApplyOptions, addWeight, checkOpset, cloneFragment, intercept, parseConfig } from './common.js';
import { loraBranch, loraConfigSchema, loraScale } from './lora.js';
import { selectTargets } from './targets.js';

export const loraMoeConfigSchema = loraConfigSchema
  .omit({ rank_pattern: true, alpha_pattern: true, init_lora_weights: true })
  .extend({
    num_experts: z.number().int().min(2).default(4),
    top_k: z.number().int().positive().default(2),
    /** Router init N(0, std²) (MixLoRA router_init_range). */
    router_init_std: z.number().positive().default(0.02),
    /** Suggested weight of the aux loss (the trainer reads it; MixLoRA examples use 0.01). */
    router_aux_loss_coef: z.number().min(0).default(0.01),
  });
export type LoraMoeConfig = z.output<typeof loraMoeConfigSchema>;

export const LORA_MOE_CONFIG_DOCS: Record<string, string> = {
  num_experts: 'E: LoRA experts per target.',
  top_k: 'Experts used per token (gates are a softmax over the top-k router logits).',
  router_init_std: 'Std of the router weight init.',
  router_aux_loss_coef: 'Coefficient the trainer puts on the load-balancing loss.',
};

export interface LoraMoeInfo {
  method: 'lora-moe';
  config: LoraMoeConfig;
  modules: Array<{ module: string; router: string; experts: Array<{ loraA: string; loraB: string }>; scale: number; auxLoss: string }>;
  /** Scalar graph outputs to add (× router_aux_loss_coef) to the training loss. */
  auxLosses: string[];
}

export function applyLoraMoe(fragment: OnnxFragment, config: unknown, seed: number, options: ApplyOptions = {}): AdapterResult<LoraMoeInfo> {
  const what = options.what ?? 'lora-moe adapter';
  const cfg = parseConfig(loraMoeConfigSchema, config, what);
  if (cfg.top_k > cfg.num_experts) throw new AdapterError(`${what}: config field 'top_k' (${cfg.top_k}) exceeds num_experts (${cfg.num_experts})`);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const b = new GraphBuilder(out.graph);
  const selected = selectTargets(out.graph, cfg, what);
  const E = cfg.num_experts;
  const k = cfg.top_k;
  const scale = loraScale(cfg.lora_alpha, cfg.r, cfg.use_rslora);
  const training = options.training ?? false;
  const trainable: string[] = [];
  const modules: LoraMoeInfo['modules'] = [];
  for (const [module, layers] of selected) {
    const { inFeatures: inF, outFeatures: outF } = layers[0];
    const router = addWeight(b, `${module}.lora_router.default.weight`, [E, inF], { kind: 'normal', std: cfg.router_init_std }, seed, options, what);
    const experts = Array.from({ length: E }, (_, e) => ({
      loraA: addWeight(b, `${module}.lora_A.expert_${e}.weight`, [cfg.r, inF], { kind: 'kaiming', fanIn: inF }, seed, options, what),
      loraB: addWeight(b, `${module}.lora_B.expert_${e}.weight`, [outF, cfg.r], { kind: 'zeros' }, seed, options, what),
    }));
    trainable.push(router, ...experts.flatMap((x) => [x.loraA, x.loraB]));
    const auxTerms: string[] = [];
    for (const layer of layers) {
      const x = layer.input;
      const logits = b.matmul(x, b.transpose(router, [1, 0])); // [..., E]
      const [, idx] = b.opN('TopK', [logits, b.ints([k])], { axis: -1, largest: 1, sorted: 1 }, 2);
      const gates = b.op('Softmax', [b.op('GatherElements', [logits, idx], { axis: -1 })], { axis: -1 }); // [..., k]
      const zeros = b.op('ConstantOfShape', [b.shape(logits)], { value: tensorFromNumbers('float32', [1], [0]) });
      const dense = b.op('ScatterElements', [zeros, idx, gates], { axis: -1 }); // [..., E]
      const base = intercept(b, layer.output);
      let sum = base;
      experts.forEach((ex, e) => {
        const branch = loraBranch(b, x, ex.loraA, ex.loraB, scale, cfg.lora_dropout, training);
        const gate = b.op('Slice', [dense, b.ints([e]), b.ints([e + 1]), b.ints([-1])]);
        sum = b.add(sum, b.mul(branch, gate));
      });
      b.op('Identity', [sum], {}, { outputs: [layer.output] });
      // Switch load-balancing loss over all positions.
      const probs = b.reshape(b.op('Softmax', [logits], { axis: -1 }), [-1, E]);
      const meanProb = b.reduceMean(probs, [0], false, out.opset);
      const ones = b.op('ConstantOfShape', [b.shape(idx)], { value: tensorFromNumbers('float32', [1], [1]) });
      const assigned = b.reshape(b.op('ScatterElements', [zeros, idx, ones], { axis: -1 }), [-1, E]);
      const fraction = b.mul(b.reduceMean(assigned, [0], false, out.opset), b.scalar(1 / k));
      auxTerms.push(b.mul(b.reduceSum(b.mul(fraction, meanProb), [0], false), b.scalar(E)));
    }
    const auxLoss = `${module}.moe_aux_loss`;
    b.op(auxTerms.length === 1 ? 'Identity' : 'Sum', auxTerms, {}, { outputs: [auxLoss] });
    b.output(auxLoss, 'float32', []);
    modules.push({ module, router, experts, scale, auxLoss });
  }
  out.weights.push(...trainable);
  return { fragment: out, trainable, info: { method: 'lora-moe', config: cfg, modules, auxLosses: modules.map((m) => m.auxLoss) } };
}
