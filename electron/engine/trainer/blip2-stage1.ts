// BLIP-2 stage 1: the Q-Former learns from image-text pairs with three objectives over one set of weights,
// built as one training model holding three passes of the same fragment (mask modes itc, itm, itg) whose
// initializers are shared (`qformer/<weight>`):
//   ITC  queries and text apart; sim(i, j) = max_q ⟨vision_proj(query_q(i)), text_proj(text_CLS(j))⟩ (both
//        L2-normalised) / τ, τ learnable from 0.07 (clamped to [0.001, 0.5]); symmetric cross-entropy.
//   ITM  bidirectional pass over B positive pairs, B (image, hard negative text) and B (hard negative image, text)
//        pairs; negatives drawn from softmax(ITC similarity) without the diagonal (Gumbel-max with noise fed per
//        batch); a Linear(D, 2) on every query output, averaged over queries; cross-entropy.
//   ITG  multimodal causal pass ([DEC] first): text sees all queries and earlier text; BERT LM head tied to the
//        Q-Former's word embedding; next-token cross-entropy.
// loss = ITC + ITM + ITG. The vision encoder is a frozen prefix (its features are cached per sample).

import { GraphBuilder } from '../../onnx/builder.js';
import { type Model, type Tensor, type ValueInfo, emptyGraph, newModel } from '../../onnx/ir.js';
import { crossEntropyLoss } from '../../autodiff/losses.js';
import type { OptimizerConfig } from '../../autodiff/optimizers.js';
import { type TrainStep, buildTrainStep } from '../../autodiff/train-step.js';
import { buildApplyStep, buildGradStep } from '../../autodiff/accumulate.js';
import type { Catalog } from '../../nodes/catalog.js';
import type { OnnxFragment } from '../../nodes/types.js';
import type { MetaBuildContext } from '../../nodes/blocks.js';
import { ADAPTER_WEIGHT_PREFIX, type Executor, RunPlan } from '../executor.js';
import { nodeSeed } from '../keys.js';
import { Rng } from '../rng.js';
import type { TextTokenizer } from '../tokenizer.js';
import type { BuiltTraining, TrainableRef } from './model.js';
import { addMlmHead } from './objectives.js';
import { type TrainPlan, TrainError } from './plan.js';

/** Per-batch inputs of the stage-1 model (drawn by the trainer, not per sample). */
export const STAGE1 = {
  ids: 'itc.input_ids',
  mask: 'itc.attention_mask',
  decIds: 'itg.input_ids',
  itgLabels: 'itg.labels',
  itmLabels: 'itm.labels',
  gumbelI2t: 'itm.gumbel_i2t',
  gumbelT2i: 'itm.gumbel_t2i',
  temp: 'itc.temp',
} as const;
export const STAGE1_BATCH_INPUTS: ReadonlySet<string> = new Set(Object.values(STAGE1).filter((n) => n !== STAGE1.temp));

const TEMP_INIT = 0.07;
const MAX_TEXT = 32;

export function qformerOf(plan: TrainPlan): string {
  const q = plan.doc.nodes.filter((n) => n.type === 'projector.qformer');
  if (q.length !== 1) throw new TrainError(`blip2-stage1 trains one projector.qformer; the graph has ${q.length}`);
  return q[0].id;
}

export interface Stage1Options {
  executor: Executor;
  catalog: Catalog;
  baseDir: string;
  plan: TrainPlan;
  optimizer: OptimizerConfig;
  maxGradNorm: number;
  weightDecay: number;
  accumulate?: boolean;
}

export async function buildBlip2Stage1(o: Stage1Options): Promise<BuiltTraining> {
  const { plan } = o;
  const doc = plan.doc;
  const q = qformerOf(plan);
  const qNode = doc.nodes.find((n) => n.id === q)!;
  if (qNode.adapters.length > 0) throw new TrainError(`blip2-stage1 trains the Q-Former '${q}' itself; remove its adapters`);
  const visionEdge = doc.edges.find((e) => e.to.node === q && e.to.port === 'vision_features');
  if (!visionEdge) throw new TrainError(`Q-Former '${q}': its vision_features input is not connected to a vision encoder`);
  if (!plan.prefixNodes.includes(visionEdge.from.node)) {
    throw new TrainError(`blip2-stage1 keeps the vision encoder '${visionEdge.from.node}' frozen (a cached prefix); it is set to train`);
  }
  const vision = `${visionEdge.from.node}.${visionEdge.from.port}`;

  // Three builds of the same node, one per mask mode, from the same seed and stored weights.
  const run = new RunPlan(doc, o.catalog, { baseDir: o.baseDir, targets: [q] });
  const def = run.def(q);
  const owner = run.weightOwner(q);
  const loaded = run.loadWeights(owner, q);
  const own = loaded && new Map([...loaded].filter(([k]) => !k.startsWith(ADAPTER_WEIGHT_PREFIX)));
  const seed = nodeSeed(doc.seed ?? 0, owner);
  const inputShapes = { ...run.shapes(q).inputs, input_ids: ['batch', 'sequence'], attention_mask: ['batch', 'sequence'] };
  // A Q-Former trained for generation only has no text branch (word and position embeddings, the text FFNs); the
  // ITC/ITM/ITG passes need one, and this recipe starts it from the seed (BLIP-2 starts it from BERT) — said
  // explicitly, so any other weight the file lacks is still an error.
  const textBranch = /^embeddings\.(word|position)_embeddings\.|^encoder\.layer\.\d+\.(intermediate|output)\./;
  const textBranchFresh = (names: string[]) => names.filter((w) => textBranch.test(w) && !own?.has(w));
  const freshWeights = (names: string[]) => [...(run.node(q).freshWeights ?? []), ...textBranchFresh(names)];
  const build = (mode: 'itc' | 'itm' | 'itg'): OnnxFragment => {
    const params = def.params.parse({ ...(run.params(q) as Record<string, unknown>), mask_mode: mode });
    const meta: MetaBuildContext = { nodeId: q, seed, inputShapes, meta: true };
    const names = def.build!(params, meta).weights;
    return def.build!(params, { nodeId: q, seed, inputShapes, weights: own, freshWeights: freshWeights(names) });
  };
  const passes = { itc: build('itc'), itm: build('itm'), itg: build('itg') };
  const opset = Math.max(...Object.values(passes).map((f) => f.opset));

  const graph = emptyGraph('blip2_stage1');
  const b = new GraphBuilder(graph);
  const shared = (w: string) => `${q}/${w}`;
  for (const w of passes.itc.weights) graph.initializers.set(shared(w), passes.itc.graph.initializers.get(w)!);
  /** Appends one pass: its ports read the given values, its weights are the shared ones, the rest is prefixed. */
  const append = (pass: keyof typeof passes, feeds: Record<string, string>) => {
    const f = passes[pass];
    const weights = new Set(f.weights);
    const rename = (v: string) => (!v ? v : feeds[v] ?? (weights.has(v) ? shared(v) : `${pass}/${v}`));
    for (const [name, t] of f.graph.initializers) {
      if (!weights.has(name)) {
        graph.initializers.set(rename(name), t);
        continue;
      }
      const mine = graph.initializers.get(shared(name));
      if (!mine || mine.dims.join(',') !== t.dims.join(',')) throw new TrainError(`Q-Former '${q}': pass '${pass}' has a different weight '${name}'`);
    }
    for (const n of f.graph.nodes) {
      graph.nodes.push({ ...n, name: `${pass}/${n.name}`, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename), attrs: { ...n.attrs } });
    }
    for (const [name, vi] of f.graph.valueInfo) graph.valueInfo.set(rename(name), { ...vi, name: rename(name) });
    return (port: string) => rename(port);
  };

  b.input(vision, 'float32', ['batch', 'patches', 'vision_width']);
  const ids = b.input(STAGE1.ids, 'int64', ['batch', 'sequence']);
  const mask = b.input(STAGE1.mask, 'int64', ['batch', 'sequence']);
  const D = passes.itc.graph.outputs.find((v) => v.name === 'query_output')!.shape![2] as number;
  const rng = new Rng(seed).fork('blip2-stage1-heads');
  const heads = new Map<string, Tensor>();
  const param = (name: string, dims: number[], fill: (a: Float32Array) => void) => {
    const data = new Float32Array(dims.reduce((n, d) => n * d, 1));
    fill(data);
    const t: Tensor = { dtype: 'float32', dims, data };
    b.initializer(name, t);
    heads.set(name, t);
    return name;
  };
  const normal = (a: Float32Array) => rng.fillNormal(a, 0.02);
  const linear = (x: string, name: string, dIn: number, dOut: number) =>
    b.add(b.matmul(x, b.transpose(param(`${name}.weight`, [dOut, dIn], normal), [1, 0])), param(`${name}.bias`, [dOut], () => undefined));
  // Reductions over given axes in the model's opset (axes became an input at opset 18).
  const reduce = (op: string, x: string, axes: number[], keepdims: 0 | 1) =>
    opset >= 18 ? b.op(op, [x, b.ints(axes)], { keepdims }) : b.op(op, [x], { axes, keepdims });
  const normalise = (x: string) => b.div(x, b.op('Max', [reduce('ReduceL2', x, [-1], 1), b.scalar(1e-12)]));

  // ITC.
  const itc = append('itc', { vision_features: vision, input_ids: ids, attention_mask: mask });
  const E = D;
  const imageFeat = normalise(linear(itc('query_output'), 'itc.vision_proj', D, E)); // [B, Q, E]
  const textCls = b.squeeze(b.op('Slice', [itc('text_output'), b.ints([0]), b.ints([1]), b.ints([1])]), [1]); // [B, D]
  const textFeat = normalise(linear(textCls, 'itc.text_proj', D, E)); // [B, E]
  const temp = param(STAGE1.temp, [], (a) => a.fill(TEMP_INIT));
  const clampedTemp = b.op('Clip', [temp, b.scalar(0.001), b.scalar(0.5)]);
  // sim[i, j] = max over queries of image i · text j.
  const perQuery = b.op('MatMul', [b.unsqueeze(imageFeat, [1]), b.unsqueeze(b.unsqueeze(textFeat, [0]), [-1])]); // [B, B, Q, 1]
  const sim = reduce('ReduceMax', b.squeeze(perQuery, [-1]), [-1], 0); // [B(image), B(text)]
  const logits = b.div(sim, clampedTemp);
  const eye = b.op('EyeLike', [logits]);
  const n = b.cast(b.op('Gather', [b.shape(logits), b.constant('int64', [], [0])]), 'float32');
  const direction = (axis: number) => b.neg(b.div(b.op('ReduceSum', [b.mul(b.op('LogSoftmax', [logits], { axis }), eye)], { keepdims: 0 }), n));
  const itcLoss = b.mul(b.add(direction(1), direction(0)), b.scalar(0.5));
  const itcLogits = b.op('Identity', [logits], {}, { outputs: ['train.itc_logits'] });

  // ITM: hard negatives ~ softmax(similarity) off the diagonal (Gumbel-max), indices carry no gradient.
  const offDiagonal = b.mul(eye, b.scalar(-1e9));
  const pick = (scores: string, gumbel: string) =>
    b.op('ArgMax', [b.add(b.add(b.op('LogSoftmax', [scores], { axis: 1 }), b.input(gumbel, 'float32', ['batch', 'batch'])), offDiagonal)], { axis: 1, keepdims: 0 });
  const negText = pick(logits, STAGE1.gumbelI2t); // for each image, a text
  const negImage = pick(b.transpose(logits, [1, 0]), STAGE1.gumbelT2i); // for each text, an image
  const gather = (x: string, idx: string) => b.op('Gather', [x, idx], { axis: 0 });
  const itm = append('itm', {
    vision_features: b.concat([vision, vision, gather(vision, negImage)], 0),
    input_ids: b.concat([ids, gather(ids, negText), ids], 0),
    attention_mask: b.concat([mask, gather(mask, negText), mask], 0),
  });
  const itmLogits = reduce('ReduceMean', linear(itm('query_output'), 'itm.head', D, 2), [1], 0); // [3B, 2]
  const itmLoss = crossEntropyLoss(b, itmLogits, b.input(STAGE1.itmLabels, 'int64', ['pairs']), { name: 'itm_loss' }).loss;

  // ITG: [DEC] text, causal over text, all queries visible; LM head tied to the word embedding.
  const decIds = b.input(STAGE1.decIds, 'int64', ['batch', 'sequence']);
  const itg = append('itg', { vision_features: vision, input_ids: decIds, attention_mask: mask });
  const wordEmbedding = shared('embeddings.word_embeddings.weight');
  const V = graph.initializers.get(wordEmbedding)?.dims[0];
  if (V === undefined) throw new TrainError(`Q-Former '${q}' has no embeddings.word_embeddings.weight for the ITG head`);
  const head = addMlmHead(b, itg('text_output'), D, V, wordEmbedding, rng, 'itg.cls');
  for (const [k, t] of head.heads.init) heads.set(k, t);
  const shifted = b.op('Slice', [head.logits, b.ints([0]), b.ints([-1]), b.ints([1])]);
  const targets = b.op('Slice', [b.input(STAGE1.itgLabels, 'int64', ['batch', 'sequence']), b.ints([1]), b.ints([Number.MAX_SAFE_INTEGER]), b.ints([1])]);
  const itgLoss = crossEntropyLoss(b, shifted, targets, { name: 'itg_loss' }).loss;

  const lossName = b.op('Identity', [b.op('Sum', [itcLoss, itmLoss, itgLoss])], {}, { outputs: ['train.loss_value'] });
  const parts = ['itc', 'itm', 'itg'].map((k, i) => b.op('Identity', [[itcLoss, itmLoss, itgLoss][i]], {}, { outputs: [`train.${k}_loss`] }));
  const model: Model = newModel(graph, opset);

  const trainables: TrainableRef[] = [
    // The language projection feeds the LLM (stage 2); stage 1 leaves it as it is.
    ...passes.itc.weights.filter((w) => !w.startsWith('language_projection.')).map((w) => ({ name: shared(w), node: q, weight: w })),
    ...[...heads.keys()].map((name) => ({ name, node: '', weight: name })),
  ];
  const initial = new Map(trainables.map((t) => [t.name, graph.initializers.get(t.name)!]));
  const extraOutputs: ValueInfo[] = [
    { name: itcLogits, dtype: 'float32', shape: ['batch', 'batch'] },
    ...parts.map((name) => ({ name, dtype: 'float32' as const, shape: [] })),
  ];
  const names = trainables.map((t) => t.name);
  const noDecay = (p: string) => (p === STAGE1.temp || /(bias|norm|LayerNorm)[^/]*$/i.test(p) || graph.initializers.get(p)!.dims.length <= 1 ? 0 : o.weightDecay);
  let step: TrainStep;
  try {
    step = buildTrainStep(model, { loss: lossName, trainable: names, optimizer: o.optimizer, maxGradNorm: o.maxGradNorm, weightDecayOf: noDecay, extraOutputs: extraOutputs.map((e) => e.name) });
  } catch (e) {
    throw new TrainError(`blip2-stage1: cannot build the training step: ${(e as Error).message}`);
  }
  const evalModel: Model = {
    ...model,
    graph: {
      ...graph,
      initializers: new Map([...graph.initializers].filter(([k]) => !initial.has(k))),
      inputs: [...graph.inputs, ...trainables.map((t) => ({ name: t.name, dtype: 'float32' as const, shape: [...initial.get(t.name)!.dims] }))],
      outputs: [{ name: lossName, dtype: 'float32', shape: [] }, ...extraOutputs],
    },
  };
  const accumulation = o.accumulate
    ? {
        grad: buildGradStep(model, { loss: lossName, trainable: names, extraOutputs: extraOutputs.map((e) => e.name) }),
        apply: buildApplyStep(initial, { optimizer: o.optimizer, maxGradNorm: o.maxGradNorm, weightDecayOf: noDecay }),
      }
    : undefined;
  const trained = new Set(names);
  const dataInputs = step.model.graph.inputs.filter((v) => !trained.has(v.name) && !v.name.startsWith('optim.') && !step.params.some((p) => p.state.some((s) => s.input === v.name)));

  const fusedPrefix = await o.executor.fuse(doc, o.baseDir, plan.prefixNodes, { outputs: [visionEdge.from], onlyRequestedOutputs: true });
  const prefix = { model: fusedPrefix.model, outputs: new Map([[`${visionEdge.from.node}/${visionEdge.from.port}`, vision]]) };
  return {
    step, evalModel, prefix, trainables, initial, dataInputs, pastInputs: [], metricOutputs: { logits: itcLogits }, lossNodes: [q],
    nodeWeights: new Map([[q, { fused: passes.itc.weights.map(shared), adapters: new Set<string>() }]]), accumulation,
  };
}

/** The per-batch text inputs: [CLS] caption [SEP] (ITC/ITM), [DEC] caption [SEP] (ITG), labels, Gumbel noise. */
export function stage1Feeds(captions: string[], tok: TextTokenizer, rng: Rng): Record<string, Tensor> {
  const id = (t: string) => tok.requireId(t);
  const cls = id('[CLS]');
  const sep = id('[SEP]');
  const dec = id('[DEC]');
  const pad = tok.specialIds.pad ?? 0;
  if (captions.length < 2) throw new TrainError('blip2-stage1 draws hard negatives from the batch: use a batch size of at least 2');
  const rows = captions.map((c) => [cls, ...tok.encode(c, { addSpecialTokens: false }).slice(0, MAX_TEXT - 2), sep]);
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(B * T).fill(BigInt(pad));
  const dec64 = new BigInt64Array(B * T).fill(BigInt(pad));
  const mask = new BigInt64Array(B * T);
  const labels = new BigInt64Array(B * T).fill(-100n);
  rows.forEach((r, b) =>
    r.forEach((v, t) => {
      ids[b * T + t] = BigInt(v);
      dec64[b * T + t] = BigInt(t === 0 ? dec : v);
      mask[b * T + t] = 1n;
      if (t > 0) labels[b * T + t] = BigInt(v);
    }),
  );
  const gumbel = () => {
    const g = new Float32Array(B * B);
    for (let i = 0; i < g.length; i++) g[i] = -Math.log(-Math.log(Math.min(1 - 1e-12, Math.max(1e-12, rng.uniform()))));
    return { dtype: 'float32' as const, dims: [B, B], data: g };
  };
  const itm = new BigInt64Array(3 * B);
  itm.fill(1n, 0, B);
  const int = (data: BigInt64Array, dims: number[]): Tensor => ({ dtype: 'int64', dims, data });
  return {
    [STAGE1.ids]: int(ids, [B, T]),
    [STAGE1.mask]: int(mask, [B, T]),
    [STAGE1.decIds]: int(dec64, [B, T]),
    [STAGE1.itgLabels]: int(labels, [B, T]),
    [STAGE1.itmLabels]: int(itm, [3 * B]),
    [STAGE1.gumbelI2t]: gumbel(),
    [STAGE1.gumbelT2i]: gumbel(),
  };
}
