// Target matching as PEFT does it, over the linear layers of an ONNX graph.
//
// A linear layer is a MatMul whose weight is a 2-D initializer, in one of the layouts exporters write:
//   x @ W            W [in, out]   (HF Conv1D, our GPT-2 flavour)                      layout 'in_out'
//   x @ Transpose(W) W [out, in]   (torch nn.Linear through torch.onnx, our builders)  layout 'out_in'
//   Gemm(x, W, b, transB=1)        W [out, in];  transB=0: W [in, out]
// Its module path is the initializer name without '.weight' (PyTorch state-dict naming).

import { z } from 'zod';
import { type Graph, type Node, consumers, producers } from '../../onnx/ir.js';
import { AdapterError } from './common.js';

export type WeightLayout = 'in_out' | 'out_in';

export interface LinearLayer {
  /** Module path (initializer name minus '.weight'). */
  module: string;
  weightName: string;
  layout: WeightLayout;
  inFeatures: number;
  outFeatures: number;
  /** The MatMul or Gemm node. */
  node: string;
  /** The activation the layer reads (x). */
  input: string;
  /** The layer's result, after the bias when there is one (what adapters add to). */
  output: string;
  /** Bias initializer, when the layer has one. */
  bias?: string;
}

/** PEFT `target_modules`: a list of suffixes, a regex string (full match), or 'all-linear'. */
export const targetModulesSchema = z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]);
export type TargetModules = z.infer<typeof targetModulesSchema>;

/** The target-selection fields every adapter config shares (PEFT names). */
export const targetFields = {
  target_modules: targetModulesSchema.optional(),
  exclude_modules: targetModulesSchema.optional(),
  /** Only these layer indices (the first number after a dotted name, e.g. layers.3.…). */
  layers_to_transform: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).optional(),
  /** Name of the layer list, e.g. 'layers' or 'h' (narrows where the index is read). */
  layers_pattern: z.string().min(1).optional(),
  /** Architecture family for default targets ('auto' = guess from the module names). */
  family: z.enum(['auto', 'llama', 'opt', 'gpt2', 'bert', 'qformer', 't5']).default('auto'),
};

function is2D(graph: Graph, name: string): number[] | undefined {
  const t = graph.initializers.get(name);
  return t && t.dims.length === 2 && (t.dtype === 'float32' || t.dtype === 'float16' || t.dtype === 'float64') ? t.dims : undefined;
}

function moduleOf(weightName: string): string {
  return weightName.endsWith('.weight') ? weightName.slice(0, -'.weight'.length) : weightName;
}

function intAttr(node: Node, name: string, dflt: number): number {
  const a = node.attrs[name];
  return a && a.type === 'int' ? a.value : dflt;
}
function floatAttr(node: Node, name: string, dflt: number): number {
  const a = node.attrs[name];
  return a && (a.type === 'float' || a.type === 'int') ? a.value : dflt;
}

/** Every linear layer of the graph, in node order. */
export function findLinearLayers(graph: Graph): LinearLayer[] {
  const prod = producers(graph);
  const cons = consumers(graph);
  const layers: LinearLayer[] = [];
  const withBias = (mm: Node, out: number): { output: string; bias?: string } => {
    const readers = cons.get(mm.outputs[0]) ?? [];
    if (readers.length === 1 && readers[0].opType === 'Add') {
      const add = readers[0];
      const other = add.inputs[0] === mm.outputs[0] ? add.inputs[1] : add.inputs[0];
      const t = graph.initializers.get(other);
      if (t && t.dims.length === 1 && t.dims[0] === out) return { output: add.outputs[0], bias: other };
    }
    return { output: mm.outputs[0] };
  };
  for (const node of graph.nodes) {
    if (node.opType === 'MatMul' && node.domain === '') {
      const [x, w] = node.inputs;
      const direct = is2D(graph, w);
      if (direct) {
        const [inF, outF] = direct;
        layers.push({ module: moduleOf(w), weightName: w, layout: 'in_out', inFeatures: inF, outFeatures: outF, node: node.name, input: x, ...withBias(node, outF) });
        continue;
      }
      const t = prod.get(w);
      if (t && t.opType === 'Transpose') {
        const perm = t.attrs.perm;
        const swaps = !perm || (perm.type === 'ints' && perm.value.length === 2 && perm.value[0] === 1 && perm.value[1] === 0);
        const dims = is2D(graph, t.inputs[0]);
        if (swaps && dims) {
          const [outF, inF] = dims;
          const name = t.inputs[0];
          layers.push({ module: moduleOf(name), weightName: name, layout: 'out_in', inFeatures: inF, outFeatures: outF, node: node.name, input: x, ...withBias(node, outF) });
        }
      }
    } else if (node.opType === 'Gemm' && node.domain === '') {
      const dims = is2D(graph, node.inputs[1]);
      if (!dims || intAttr(node, 'transA', 0) !== 0 || floatAttr(node, 'alpha', 1) !== 1) continue;
      if (node.inputs[2] && floatAttr(node, 'beta', 1) !== 1) continue;
      const transB = intAttr(node, 'transB', 0) === 1;
      const [inF, outF] = transB ? [dims[1], dims[0]] : dims;
      const bias = node.inputs[2] && graph.initializers.has(node.inputs[2]) ? node.inputs[2] : undefined;
      layers.push({
        module: moduleOf(node.inputs[1]), weightName: node.inputs[1], layout: transB ? 'out_in' : 'in_out',
        inFeatures: inF, outFeatures: outF, node: node.name, input: node.inputs[0], output: node.outputs[0], ...(bias ? { bias } : {}),
      });
    }
  }
  return layers;
}

/** PEFT check_target_module_exists: a list matches the full name or a '.'-suffix; a string is a full-match regex. */
export function moduleMatches(module: string, targets: TargetModules): boolean {
  if (typeof targets === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targets})$`);
    } catch (e) {
      throw new AdapterError(`target_modules regex '${targets}' is invalid: ${(e as Error).message}`);
    }
    return re.test(module);
  }
  return targets.some((t) => module === t || module.endsWith(`.${t}`));
}

/** The layer index of a module path (PEFT: the first number after a dotted name, or after `layers_pattern`). */
export function layerIndex(module: string, pattern?: string): number | undefined {
  const esc = pattern?.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = esc ? new RegExp(`^(?:.*?\\.)?${esc}\\.(\\d+)(?:\\.|$)`) : /^(?:.*?\.)?[^.]*?\.(\d+)(?:\.|$)|^(\d+)\./;
  const m = re.exec(module);
  if (!m) return undefined;
  return Number(m[1] ?? m[2]);
}

/** PEFT's default LoRA targets per family (utils/constants.py), in the order `auto` tries them. */
export const DEFAULT_LORA_TARGETS: Record<string, string[]> = {
  llama: ['q_proj', 'v_proj'],
  opt: ['q_proj', 'v_proj'],
  gpt2: ['c_attn'],
  bert: ['query', 'value'],
  qformer: ['query', 'value'],
  t5: ['q', 'v'],
};

export interface TargetSelection {
  target_modules?: TargetModules;
  exclude_modules?: TargetModules;
  layers_to_transform?: number | number[];
  layers_pattern?: string;
  family?: string;
}

/** The family whose default targets match the most entries among the graph's modules ('auto'), or the given one. */
export function detectFamily(layers: LinearLayer[], family: string, defaults: Record<string, string[]>): string | undefined {
  if (family !== 'auto') return defaults[family] ? family : undefined;
  let best: string | undefined;
  let bestScore = 0;
  for (const f of Object.keys(defaults)) {
    const score = defaults[f].filter((t) => layers.some((l) => moduleMatches(l.module, [t]))).length;
    if (score > bestScore) {
      best = f;
      bestScore = score;
    }
  }
  return best;
}

/** The default targets for a family, or for the family that best matches the graph ('auto'). */
export function defaultTargets(layers: LinearLayer[], family: string, defaults: Record<string, string[]>): string[] | undefined {
  const f = detectFamily(layers, family, defaults);
  return f ? defaults[f] : undefined;
}

/** True when the layer is an output head: named lm_head, writing `logits`, or a word embedding reused (tied). */
function isOutputHead(graph: Graph, layer: LinearLayer): boolean {
  if (layer.module === 'lm_head' || layer.module.endsWith('.lm_head')) return true;
  if (layer.output === 'logits' || /(^|\.)(embed_tokens|wte|word_embeddings)$/.test(layer.module)) return true;
  return graph.nodes.some((n) => n.opType === 'Gather' && n.inputs[0] === layer.weightName);
}

/**
 * The linear layers a config selects, grouped by module (one module may be read by several MatMuls).
 * Throws naming the config and listing the available modules when nothing matches.
 */
export function selectTargets(
  graph: Graph,
  sel: TargetSelection,
  what: string,
  defaults: Record<string, string[]> = DEFAULT_LORA_TARGETS,
): Map<string, LinearLayer[]> {
  const layers = findLinearLayers(graph);
  // A quantised export (model_quantized.onnx, …): its linear weights reach the MatMuls through DequantizeLinear.
  const quantised = (() => {
    const prod = producers(graph);
    const nbits = graph.nodes.find((n) => n.opType === 'MatMulNBits');
    if (nbits) return `; the linear layers are quantised (MatMulNBits node '${nbits.name}', 4-bit weights): quantised weights stay frozen and the adapter cannot attach there — import the folder's fp32 precision to train adapters`;
    const mm = graph.nodes.find((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && prod.get(n.inputs[1])?.opType === 'DequantizeLinear');
    if (!mm) return '';
    const dq = prod.get(mm.inputs[1])!;
    return `; the linear layers read quantised weights (DequantizeLinear node '${dq.name}' feeds ${mm.opType} '${mm.name}'): quantised weights stay frozen and the adapter cannot attach there — import the folder's fp32 precision to train adapters`;
  })();
  if (layers.length === 0) throw new AdapterError(`${what}: the graph has no linear layer (MatMul with a 2-D weight initializer)${quantised}`);
  let targets: TargetModules | undefined = sel.target_modules;
  const family = sel.family ?? 'auto';
  if (targets === undefined) {
    targets = defaultTargets(layers, family, defaults);
    if (!targets) {
      throw new AdapterError(
        `${what}: no target_modules given and no default for family '${family}' matches; modules are ${listModules(layers)}${quantised}`,
      );
    }
  }
  const allLinear = targets === 'all-linear';
  const selected = new Map<string, LinearLayer[]>();
  const wanted = sel.layers_to_transform === undefined ? undefined : new Set([sel.layers_to_transform].flat());
  for (const layer of layers) {
    if (allLinear ? isOutputHead(graph, layer) : !moduleMatches(layer.module, targets)) continue;
    if (sel.exclude_modules !== undefined && moduleMatches(layer.module, sel.exclude_modules)) continue;
    if (wanted) {
      const idx = layerIndex(layer.module, sel.layers_pattern);
      if (idx === undefined || !wanted.has(idx)) continue;
    }
    const list = selected.get(layer.module);
    if (list) list.push(layer);
    else selected.set(layer.module, [layer]);
  }
  if (selected.size === 0) {
    const shown = typeof targets === 'string' ? `'${targets}'` : `[${targets.join(', ')}]`;
    throw new AdapterError(`${what}: target_modules ${shown} match none of the linear layers; modules are ${listModules(layers)}${quantised}`);
  }
  return selected;
}

function listModules(layers: LinearLayer[]): string {
  const names = [...new Set(layers.map((l) => l.module))];
  return names.slice(0, 12).join(', ') + (names.length > 12 ? `, … (${names.length} in all)` : '');
}
