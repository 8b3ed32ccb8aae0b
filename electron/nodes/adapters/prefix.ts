// Prefix tuning (Li & Liang 2021) and P-tuning v2 (Liu et al. 2022): P learned key/value vectors per layer,
// concatenated before the keys and values of every attention layer, as peft's PrefixEncoder feeds them through
// past_key_values. The rewrite finds each attention by its pattern, Softmax between two MatMuls:
//   scores = MatMul(q, Kᵀ) → (scale, mask: Add / Mul / Div / Sub / Where) → Softmax → MatMul(·, V)
// and concatenates the prefix onto Kᵀ (last axis) and V (second-to-last axis), after any KV-cache Concat, so the
// `present` outputs are unchanged and cached generation re-prepends the prefix each step. Mask operands between
// the scores and the Softmax are padded on their last axis so the prefix positions are always attended.
// Positions of the real tokens do not change.
//
// Parameters (peft names): without reparameterisation (P-tuning v2) `prompt_encoder.default.embedding.weight`
// [P, 2·L·td] ~ N(0,1); with it (prefix tuning default) an embedding [P, td] → Linear(td, h) → Tanh →
// Linear(h, 2·L·td) (`transform.0`, `transform.2`). Column block 2i of the table is layer i's keys, 2i+1 its values,
// each laid out [heads, head_dim] (td = kv heads · head_dim).

import { z } from 'zod';
import { GraphBuilder } from '../../onnx/builder.js';
import { type Dim, type Graph, type Node, type ValueInfo, consumers, producers, tensorFromNumbers, topoSort } from '../../onnx/ir.js';
import { inferShapes } from '../../onnx/shapes.js';
import type { OnnxFragment } from '../types.js';
import { AdapterError, type AdapterResult, type ApplyOptions, addWeight, batchDim, checkOpset, cloneFragment, modelFromFragment, parseConfig } from './common.js';

export const prefixConfigSchema = z.strictObject({
  num_virtual_tokens: z.number().int().positive().default(10),
  /** Reparameterise the prefix through an MLP (peft prefix_projection). */
  prefix_projection: z.boolean().default(true),
  /** Width of the reparameterisation embedding; default: the key width of a layer (td). */
  token_dim: z.number().int().positive().optional(),
  /** Hidden width of the reparameterisation MLP; default td. */
  encoder_hidden_size: z.number().int().positive().optional(),
  /** Only these attention layers (0-based, in graph order); default all. */
  layers: z.array(z.number().int().nonnegative()).optional(),
  /** Symbolic dims of graph inputs for shape inference (e.g. {"sequence_length": 4}); rarely needed. */
  input_shapes: z.record(z.string(), z.array(z.union([z.number().int(), z.string()]))).optional(),
});
export type PrefixConfig = z.output<typeof prefixConfigSchema>;

export const PREFIX_CONFIG_DOCS: Record<keyof PrefixConfig, string> = {
  num_virtual_tokens: 'P: prefix length (virtual key/value positions per layer).',
  prefix_projection: 'Prefix = MLP(embedding) (prefix tuning) instead of a free table (P-tuning v2).',
  token_dim: 'Width of the embedding fed to the MLP (default: the layer key width).',
  encoder_hidden_size: 'Hidden width of the MLP (default: the layer key width).',
  layers: 'Only prefix these attention layers (graph order).',
  input_shapes: 'Input dims for shape inference when the graph leaves them symbolic.',
};

export interface AttentionSite {
  /** MatMul(q, Kᵀ). */
  scores: Node;
  softmax: Node;
  /** MatMul(probs, V). */
  context: Node;
  /** Ops between the scores and the Softmax, with the index of the input that carries the scores. */
  chain: Array<{ node: Node; at: number }>;
}

const CHAIN_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'Where', 'Cast', 'Identity']);
const PASS_OPS = new Set(['Cast', 'Identity', 'Dropout']);

/** Every Softmax fed (through mask/scale ops) by a MatMul and feeding a MatMul as its left input. */
export function findAttentionSites(graph: Graph): AttentionSite[] {
  const prod = producers(graph);
  const cons = consumers(graph);
  const sites: AttentionSite[] = [];
  for (const softmax of graph.nodes) {
    if (softmax.opType !== 'Softmax') continue;
    const chain: Array<{ node: Node; at: number }> = [];
    let value = softmax.inputs[0];
    let scores: Node | undefined;
    for (let guard = 0; guard < 16; guard++) {
      const p = prod.get(value);
      if (!p) break;
      if (p.opType === 'MatMul') {
        scores = p;
        break;
      }
      if (!CHAIN_OPS.has(p.opType)) break;
      // The scores are the float input that itself comes from a node (not a constant mask or scale).
      const candidates = p.inputs.map((inp, i) => ({ inp, i })).filter(({ inp, i }) => inp && prod.has(inp) && !(p.opType === 'Where' && i === 0));
      const next = candidates.find(({ inp }) => leadsToMatMul(prod, inp)) ?? candidates[0];
      if (!next) break;
      chain.push({ node: p, at: next.i });
      value = next.inp;
    }
    if (!scores) continue;
    let out = softmax.outputs[0];
    let context: Node | undefined;
    for (let guard = 0; guard < 4 && !context; guard++) {
      const readers = cons.get(out) ?? [];
      context = readers.find((r) => r.opType === 'MatMul' && r.inputs[0] === out);
      const pass = readers.find((r) => PASS_OPS.has(r.opType));
      if (!context && pass) out = pass.outputs[0];
      else break;
    }
    if (context) sites.push({ scores, softmax, context, chain });
  }
  return sites;
}

function leadsToMatMul(prod: Map<string, Node>, value: string): boolean {
  for (let v = value, guard = 0; guard < 16; guard++) {
    const p = prod.get(v);
    if (!p) return false;
    if (p.opType === 'MatMul') return true;
    if (!CHAIN_OPS.has(p.opType)) return false;
    const next = p.inputs.find((inp, i) => inp && prod.has(inp) && !(p.opType === 'Where' && i === 0));
    if (!next) return false;
    v = next;
  }
  return false;
}

interface SiteLayout {
  /** Dims between batch and the last two axes of Kᵀ / V (e.g. [heads] or [kv_heads, 1]). */
  middle: number[];
  headDim: number;
}

function knownDims(info: ValueInfo | undefined, what: string): Dim[] {
  if (!info?.shape) throw new AdapterError(`${what}: its shape is unknown (set config input_shapes)`);
  return info.shape;
}

function siteLayout(site: AttentionSite, infos: Map<string, ValueInfo>, what: string): SiteLayout {
  const kt = knownDims(infos.get(site.scores.inputs[1]), `${what}: keys of attention '${site.scores.name}'`);
  const v = knownDims(infos.get(site.context.inputs[1]), `${what}: values of attention '${site.context.name}'`);
  if (kt.length < 3 || kt.length !== v.length) {
    throw new AdapterError(`${what}: attention '${site.scores.name}' has keys of rank ${kt.length} and values of rank ${v.length}`);
  }
  const middle = kt.slice(1, -2);
  const hd = kt[kt.length - 2];
  const vMiddle = v.slice(1, -2);
  const vhd = v[v.length - 1];
  if (typeof hd !== 'number' || middle.some((d) => typeof d !== 'number')) {
    throw new AdapterError(`${what}: attention '${site.scores.name}': key heads/head size are not static ([${kt.join(',')}])`);
  }
  if (vhd !== hd || vMiddle.some((d, i) => d !== middle[i])) {
    throw new AdapterError(`${what}: attention '${site.scores.name}': keys [${kt.join(',')}] and values [${v.join(',')}] disagree`);
  }
  return { middle: middle as number[], headDim: hd };
}

export interface PrefixInfo {
  method: 'prefix' | 'ptuning-v2';
  config: PrefixConfig;
  numLayers: number;
  /** Width of one layer's keys (kv heads · head size). */
  tokenDim: number;
  /** Key/value heads per layer. */
  numHeads: number;
  /** Value holding the [P, 2·L·td] prefix table (what peft saves as prompt_embeddings). */
  table: string;
  sites: string[];
}

function padLast(b: GraphBuilder, value: string, p: number, fill: number, dtype: 'float32' | 'bool' | 'int64', cache: Map<string, string>): string {
  const key = `${value}|${fill}|${dtype}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const lead = b.op('Slice', [b.shape(value), b.ints([0]), b.ints([-1]), b.ints([0])]);
  const padShape = b.concat([lead, b.ints([p])], 0);
  const pad = b.op('ConstantOfShape', [padShape], { value: tensorFromNumbers(dtype, [1], [fill]) });
  const out = b.concat([pad, value], -1);
  cache.set(key, out);
  return out;
}

export function applyPrefix(
  fragment: OnnxFragment,
  config: unknown,
  seed: number,
  options: ApplyOptions = {},
  method: 'prefix' | 'ptuning-v2' = 'prefix',
): AdapterResult<PrefixInfo> {
  const what = options.what ?? `${method} adapter`;
  const cfg = parseConfig(prefixConfigSchema, method === 'ptuning-v2' ? { prefix_projection: false, ...(config as object) } : config, what);
  checkOpset(fragment, what);
  const out = cloneFragment(fragment);
  const g = out.graph;
  let sites = findAttentionSites(g);
  if (sites.length === 0) throw new AdapterError(`${what}: found no attention (MatMul → Softmax → MatMul) in graph '${g.name}'`);
  if (cfg.layers) {
    const bad = cfg.layers.find((l) => l >= sites.length);
    if (bad !== undefined) throw new AdapterError(`${what}: config field 'layers' has ${bad}, but the graph has ${sites.length} attention layers`);
    sites = sites.filter((_, i) => cfg.layers!.includes(i));
  }
  const infos = inferShapes(modelFromFragment(out), cfg.input_shapes as Record<string, Dim[]> | undefined);
  const layouts = sites.map((s) => siteLayout(s, infos, what));
  const td = layouts[0].middle.reduce((a, d) => a * d, 1) * layouts[0].headDim;
  for (const [i, l] of layouts.entries()) {
    if (l.middle.reduce((a, d) => a * d, 1) * l.headDim !== td) throw new AdapterError(`${what}: attention layer ${i} has a different key width than layer 0`);
  }
  const P = cfg.num_virtual_tokens;
  const L = sites.length;
  const b = new GraphBuilder(g);
  const trainable: string[] = [];
  const prefixName = 'prompt_encoder.default';
  let table: string;
  if (cfg.prefix_projection) {
    const dim = cfg.token_dim ?? td;
    const hidden = cfg.encoder_hidden_size ?? td;
    const emb = addWeight(b, `${prefixName}.embedding.weight`, [P, dim], { kind: 'normal', std: 1 }, seed, options, what);
    const w0 = addWeight(b, `${prefixName}.transform.0.weight`, [hidden, dim], { kind: 'kaiming', fanIn: dim }, seed, options, what);
    const b0 = addWeight(b, `${prefixName}.transform.0.bias`, [hidden], { kind: 'uniform', bound: 1 / Math.sqrt(dim) }, seed, options, what);
    const w2 = addWeight(b, `${prefixName}.transform.2.weight`, [2 * L * td, hidden], { kind: 'kaiming', fanIn: hidden }, seed, options, what);
    const b2 = addWeight(b, `${prefixName}.transform.2.bias`, [2 * L * td], { kind: 'uniform', bound: 1 / Math.sqrt(hidden) }, seed, options, what);
    trainable.push(emb, w0, b0, w2, b2);
    const h = b.op('Tanh', [b.add(b.matmul(emb, b.transpose(w0, [1, 0])), b0)]);
    table = b.add(b.matmul(h, b.transpose(w2, [1, 0])), b2);
  } else {
    table = addWeight(b, `${prefixName}.embedding.weight`, [P, 2 * L * td], { kind: 'normal', std: 1 }, seed, options, what);
    trainable.push(table);
  }
  const padCache = new Map<string, string>();
  sites.forEach((site, i) => {
    const { middle, headDim } = layouts[i];
    const block = (j: number) => b.op('Slice', [table, b.ints([j * td]), b.ints([(j + 1) * td]), b.ints([1])]);
    const batch = batchDim(b, site.scores.inputs[1]);
    const m = middle.length;
    // Keys: [P, td] → [P, ...middle, hd] → [...middle, hd, P] → [B, ...middle, hd, P].
    const k = b.reshape(block(2 * i), [P, ...middle, headDim]);
    const kT = b.transpose(k, [...middle.map((_, j) => j + 1), m + 1, 0]);
    const kB = b.op('Expand', [b.unsqueeze(kT, [0]), b.concat([batch, b.ints([...middle, headDim, P])], 0)]);
    site.scores.inputs[1] = b.concat([kB, site.scores.inputs[1]], -1);
    // Values: [P, td] → [...middle, P, hd] → [B, ...middle, P, hd].
    const v = b.reshape(block(2 * i + 1), [P, ...middle, headDim]);
    const vT = b.transpose(v, [...middle.map((_, j) => j + 1), 0, m + 1]);
    const vB = b.op('Expand', [b.unsqueeze(vT, [0]), b.concat([batch, b.ints([...middle, P, headDim])], 0)]);
    site.context.inputs[1] = b.concat([vB, site.context.inputs[1]], -2);
    // Mask and scale operands: pad on the key axis so prefix positions pass through unchanged.
    for (const { node, at } of site.chain) {
      node.inputs.forEach((inp, j) => {
        if (j === at || !inp) return;
        const shape = infos.get(inp)?.shape;
        if (shape === undefined || shape === null) throw new AdapterError(`${what}: the shape of mask operand '${inp}' of '${node.name}' is unknown`);
        if (shape.length === 0 || shape[shape.length - 1] === 1) return; // broadcasts over the key axis
        const dtype = infos.get(inp)!.dtype;
        let fill = 0;
        if (node.opType === 'Where' && j === 0) fill = at === 1 ? 1 : 0; // keep the scores at prefix positions
        else if (node.opType === 'Mul' || node.opType === 'Div') fill = 1;
        const d = dtype === 'bool' ? 'bool' : dtype === 'int64' ? 'int64' : 'float32';
        node.inputs[j] = padLast(b, inp, P, fill, d, padCache);
      });
    }
  });
  // Topological order: the new nodes were appended but feed existing ones.
  g.nodes = topoSort(g);
  out.weights.push(...trainable);
  return {
    fragment: out,
    trainable,
    info: { method, config: cfg, numLayers: L, tokenDim: td, numHeads: td / layouts[0].headDim, table, sites: sites.map((s) => s.scores.name) },
  };
}
