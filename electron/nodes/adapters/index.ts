// Adapters as graph rewrites: one entry point per method, applied to a node's ONNX fragment (or an imported model
// via fragmentFromModel). The graph document stores them per node as {id, method, config}.
//
// Trainer use:
//   const { fragment, trainable, auxLosses } = applyAdapters(nodeFragment, node.adapters, seed, { training: true, what });
//   trainable → the initializers to optimise (the node's own weights stay frozen when the node is frozen);
//   auxLosses → scalar graph outputs to add to the loss × their coefficient (LoRA-MoE load balancing).

import { z } from 'zod';
import type { OnnxFragment } from '../types.js';
import { applyBottleneck, BOTTLENECK_CONFIG_DOCS } from './bottleneck.js';
import { AdapterError, type AdapterResult, type ApplyOptions } from './common.js';
import { applyIa3, IA3_CONFIG_DOCS } from './ia3.js';
import { applyLora, LORA_CONFIG_DOCS } from './lora.js';
import { applyLoraMoe, LORA_MOE_CONFIG_DOCS, type LoraMoeInfo } from './lora-moe.js';
import { applyPrefix, PREFIX_CONFIG_DOCS } from './prefix.js';
import { applyPrompt, applyPtuning, PROMPT_CONFIG_DOCS } from './prompt.js';
import { applyQlora, QLORA_CONFIG_DOCS } from './qlora.js';

import { applyThroughBranches, hasBranchedBody } from './branches.js';
export { AdapterError, fragmentFromModel, modelFromFragment } from './common.js';
export type { AdapterResult, ApplyOptions } from './common.js';
export { findLinearLayers, selectTargets, moduleMatches } from './targets.js';
export { mergeLora, unmergeLora } from './lora.js';
export { bitsPerParameter, quantizeNf4, dequantizeNf4 } from './nf4.js';

/** The methods of the graph document's adapterSpecSchema (electron/engine/document.ts). */
export const ADAPTER_METHODS = ['lora', 'qlora', 'prefix', 'prompt', 'ptuning', 'ptuning-v2', 'adapter', 'ia3', 'lora-moe'] as const;
export type AdapterMethodName = (typeof ADAPTER_METHODS)[number];

export const adapterSpec = z.strictObject({
  id: z.string().min(1),
  method: z.enum(ADAPTER_METHODS),
  config: z.record(z.string(), z.unknown()).default({}),
});
export type AdapterSpecInput = z.input<typeof adapterSpec>;

type Apply = (fragment: OnnxFragment, config: unknown, seed: number, options?: ApplyOptions) => AdapterResult;

interface MethodEntry {
  apply: Apply;
  title: string;
  summary: string;
  configDocs: Record<string, string>;
  /** True when the adapted node computes exactly what it did before training starts. */
  identityAtInit: boolean;
}

export const ADAPTERS: Record<AdapterMethodName, MethodEntry> = {
  lora: { apply: applyLora, title: 'LoRA', summary: 'Low-rank update y += (α/r)·B·A·x on target linears (B = 0 at init).', configDocs: LORA_CONFIG_DOCS, identityAtInit: true },
  qlora: {
    apply: applyQlora, title: 'QLoRA', summary: 'LoRA on a frozen NF4 base (block 64, double-quantised absmax), dequantised in the graph.',
    configDocs: { ...LORA_CONFIG_DOCS, ...QLORA_CONFIG_DOCS }, identityAtInit: true,
  },
  prefix: {
    apply: (f, c, s, o) => applyPrefix(f, c, s, o, 'prefix'), title: 'Prefix tuning',
    summary: 'P learned key/value positions before every attention layer, produced by an MLP.', configDocs: PREFIX_CONFIG_DOCS, identityAtInit: false,
  },
  'ptuning-v2': {
    apply: (f, c, s, o) => applyPrefix(f, c, s, o, 'ptuning-v2'), title: 'P-tuning v2',
    summary: 'Deep prompts: P free key/value positions before every attention layer.', configDocs: PREFIX_CONFIG_DOCS, identityAtInit: false,
  },
  prompt: { apply: applyPrompt, title: 'Prompt tuning', summary: 'P trainable token embeddings prepended to the input.', configDocs: PROMPT_CONFIG_DOCS, identityAtInit: false },
  ptuning: { apply: applyPtuning, title: 'P-tuning', summary: 'Virtual tokens from an MLP or LSTM prompt encoder, prepended to the input.', configDocs: PROMPT_CONFIG_DOCS, identityAtInit: false },
  adapter: { apply: applyBottleneck, title: 'Bottleneck adapter', summary: 'h + up(act(down(h))) after attention and/or FFN (Houlsby / Pfeiffer).', configDocs: BOTTLENECK_CONFIG_DOCS, identityAtInit: true },
  ia3: { apply: applyIa3, title: 'IA3', summary: 'Learned rescaling of keys, values and FFN activations (ones at init).', configDocs: IA3_CONFIG_DOCS, identityAtInit: true },
  'lora-moe': {
    apply: applyLoraMoe, title: 'LoRA-MoE', summary: 'Top-k routed LoRA experts with a load-balancing auxiliary loss.',
    configDocs: { ...LORA_CONFIG_DOCS, ...LORA_MOE_CONFIG_DOCS }, identityAtInit: true,
  },
};

/** Applies one adapter spec ({id, method, config}); `what` in errors names the adapter (and the node when given). */
export function applyAdapter(fragment: OnnxFragment, spec: AdapterSpecInput, seed: number, options: ApplyOptions = {}): AdapterResult {
  const parsed = adapterSpec.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AdapterError(`${options.what ?? 'adapter'}: field '${issue?.path.join('.')}': ${issue?.message}`);
  }
  const { id, method, config } = parsed.data;
  const what = `${options.what ? `${options.what}: ` : ''}adapter '${id}' (${method})`;
  return ADAPTERS[method].apply(fragment, config, seed, { ...options, what });
}

export interface AppliedAdapters {
  fragment: OnnxFragment;
  /** Every adapter weight to train, in order. */
  trainable: string[];
  /** Scalar outputs to add to the loss, with their coefficient. */
  auxLosses: Array<{ output: string; coefficient: number }>;
  results: Array<{ id: string; method: AdapterMethodName; result: AdapterResult }>;
}

/** Applies a node's adapters in order (each on the previous result); each gets its own seed stream by id. */
export function applyAdapters(fragment: OnnxFragment, specs: AdapterSpecInput[], seed: number, options: ApplyOptions = {}): AppliedAdapters {
  let current = fragment;
  const trainable: string[] = [];
  const auxLosses: AppliedAdapters['auxLosses'] = [];
  const results: AppliedAdapters['results'] = [];
  const ids = new Set<string>();
  for (const spec of specs) {
    if (ids.has(spec.id)) throw new AdapterError(`${options.what ?? 'adapters'}: adapter id '${spec.id}' is used twice`);
    ids.add(spec.id);
    // A merged decoder keeps its layers inside If branches: layer adapters rewrite each branch; the ones that
    // change the inputs (prompt tuning, P-tuning) apply where the inputs are, at the top.
    const result =
      hasBranchedBody(current) && !INPUT_METHODS.has(spec.method)
        ? branchResult(applyThroughBranches(current, (view) => {
            if (spec.method === 'lora-moe') {
              throw new AdapterError(`${options.what ?? 'adapters'}: adapter '${spec.id}' (lora-moe): its load-balancing loss cannot leave the If branches of a merged decoder; use lora, or the folder's model.onnx`);
            }
            const r = applyAdapter(view, spec, seedFor(seed, spec.id), options);
            return { fragment: r.fragment, trainable: r.trainable, auxLosses: [] };
          }, options.what ?? 'adapters'))
        : applyAdapter(current, spec, seedFor(seed, spec.id), options);
    current = result.fragment;
    trainable.push(...result.trainable);
    if (spec.method === 'lora-moe') {
      const info = result.info as LoraMoeInfo;
      for (const output of info.auxLosses) auxLosses.push({ output, coefficient: info.config.router_aux_loss_coef });
    }
    results.push({ id: spec.id, method: spec.method, result });
  }
  return { fragment: current, trainable, auxLosses, results };
}

/** Adapters that rewrite the graph's inputs rather than its layers. */
const INPUT_METHODS = new Set<string>(['prompt', 'ptuning']);

function branchResult(b: { fragment: OnnxFragment; trainable: string[] }): AdapterResult {
  return { fragment: b.fragment, trainable: b.trainable, info: { branches: true } };
}

/** A stable per-adapter seed (FNV-1a of the id mixed into the node seed). */
function seedFor(seed: number, id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (seed ^ (h >>> 0)) >>> 0;
}
