// The training model: the fused ONNX nodes of the plan, the objective's loss on top, then forward + backward +
// optimiser as one ONNX model (autodiff/train-step.ts). Also the frozen-prefix model (fused frozen upstream nodes)
// and a forward-only evaluation model that takes the current trainables as inputs.

import { GraphBuilder } from '../../onnx/builder.js';
import { type Dim, type Graph, type Model, type Tensor, type ValueInfo, OnnxError } from '../../onnx/ir.js';
import { type OptimizerConfig } from '../../autodiff/optimizers.js';
import { type TrainStep, buildTrainStep } from '../../autodiff/train-step.js';
import { type GradStep, buildApplyStep, buildGradStep } from '../../autodiff/accumulate.js';
import { crossEntropyLoss, infoNceLoss, mseLoss } from '../../autodiff/losses.js';
import { WORD_EMBEDDING } from '../../nodes/llms.js';
import { isGeneratingDecoder } from '../../nodes/imported.js';
import type { Catalog } from '../../nodes/catalog.js';
import type { ComposedModel } from '../compose.js';
import type { Executor } from '../executor.js';
import { type GraphDocument, downstreamDecoder } from '../document.js';
import { type TrainPlan, TrainError, ancestorsOf, defOf, nodeTrainsItself } from './plan.js';
import type { Objective } from './recipes.js';
import { ALIGN_TARGET, MLM, addDiffusionLoss, addMlmHead, addMrmLoss, diffusionSetup } from './objectives.js';
import { Rng } from '../rng.js';

/** CLIP's temperature: logit scale starts at ln(1/0.07) and is clamped to [0, ln 100]. */
export const LOGIT_SCALE = 'itc.logit_scale';
export const LOGIT_SCALE_INIT = Math.log(1 / 0.07);
export const LOGIT_SCALE_MAX = Math.log(100);

/** Where a trained tensor comes from: a node's weight (by its original initializer name) or a trainer head. */
export interface TrainableRef {
  /** Name in the training model. */
  name: string;
  /** Node whose weights file holds it ('' for trainer heads such as the ITC temperature). */
  node: string;
  /** Initializer name inside that node's fragment. */
  weight: string;
}

export interface BuiltTraining {
  step: TrainStep;
  /** Forward + loss + metrics, trainables as inputs (evaluation). */
  evalModel: Model;
  /** Frozen prefix model (null when there is no prefix). */
  prefix: { model: Model; outputs: Map<string, string> } | null;
  trainables: TrainableRef[];
  /** Initial values of every trainable. */
  initial: Map<string, Tensor>;
  /** Data inputs of the training model (everything it reads besides trainables, optimiser state and scalars). */
  dataInputs: ValueInfo[];
  /** Inputs of the training model the trainer feeds as zero-length past key/values. */
  pastInputs: ValueInfo[];
  /** Fused input that takes LM labels aligned to the LM tokens (merge token_labels), if any. */
  labelInput?: string;
  metricOutputs: { correct?: string; tokens?: string; logits?: string };
  lossNodes: string[];
  /** Per node holding trainables: every weight of its fragment (fused names) and which of them are adapter weights. */
  nodeWeights: Map<string, NodeWeights>;
  /** MLM / MRM: which data inputs the trainer masks per batch. */
  masking?:
    | { kind: 'mlm'; idsInput: string; maskInput?: string; tokenizeNode: string }
    | { kind: 'mrm'; pixelInput: string; patch: number };
  /** Gradient accumulation (BuildOptions.accumulate): a gradient-only model and the update over summed gradients. */
  accumulation?: { grad: GradStep; apply: TrainStep };
}

export interface NodeWeights {
  fused: string[];
  adapters: Set<string>;
}

export interface BuildOptions {
  executor: Executor;
  catalog: Catalog;
  baseDir: string;
  plan: TrainPlan;
  objective: Objective;
  optimizer: OptimizerConfig;
  maxGradNorm: number;
  weightDecay: number;
  /** Also build the gradient-accumulation models. */
  accumulate?: boolean;
}

/** The nodes whose outputs an objective reads, and which ports. */
export function lossPorts(doc: GraphDocument, catalog: Catalog, objective: Objective): Array<{ node: string; port: string }> {
  if (objective === 'lm') {
    const decoders = doc.nodes.filter(isGeneratingDecoder);
    if (decoders.length !== 1) {
      throw new TrainError(`the LM objective needs exactly one decoder (llm.decoder, or an imported decoder that generates); the graph has ${decoders.length}`);
    }
    return [{ node: decoders[0].id, port: 'logits' }];
  }
  if (objective === 'diffusion') return [{ node: diffusionSetup(doc).unet, port: 'out_sample' }];
  if (objective === 'align') return [diffusionSetup(doc).conditioning];
  if (objective === 'blip2-stage1') {
    const q = doc.nodes.filter((n) => n.type === 'projector.qformer');
    if (q.length !== 1) throw new TrainError(`blip2-stage1 trains one projector.qformer; the graph has ${q.length}`);
    return [{ node: q[0].id, port: 'query_output' }];
  }
  if (objective === 'mlm' || objective === 'mrm') {
    const kind = objective === 'mlm' ? 'tokens' : 'image';
    for (const n of doc.nodes) {
      const def = defOf(doc, catalog, n.id);
      if (def.info.family !== 'encoder' || !def.build) continue;
      if (def.info.inputs.some((p) => p.kind === kind) && def.info.outputs.some((p) => p.name === 'last_hidden_state')) {
        return [{ node: n.id, port: 'last_hidden_state' }];
      }
    }
    throw new TrainError(`the ${objective.toUpperCase()} objective needs ${kind === 'tokens' ? 'a text' : 'an image'} encoder with a last_hidden_state output in the graph`);
  }
  // ITC: the pooled embedding of an image encoder and of a text encoder.
  const pick = (kind: 'image' | 'text') => {
    for (const n of doc.nodes) {
      const def = defOf(doc, catalog, n.id);
      if (def.info.family !== 'encoder' || !def.build) continue;
      const inputs = def.info.inputs.map((p) => p.kind);
      const isImage = inputs.includes('image');
      const isText = inputs.includes('tokens');
      if ((kind === 'image' && !isImage) || (kind === 'text' && !isText)) continue;
      const outs = def.info.outputs.map((p) => p.name);
      const port = [kind === 'image' ? 'image_embeds' : 'text_embeds', 'pooler_output'].find((p) => outs.includes(p));
      if (port) return { node: n.id, port };
    }
    throw new TrainError(`the contrastive (ITC) objective needs a ${kind} encoder with a pooled output in the graph`);
  };
  return [pick('image'), pick('text')];
}

/** `node/port` inside the fused training model, `node.port` when it comes from outside (data or prefix). */
function valueName(plan: TrainPlan, node: string, port: string): string {
  return plan.trainNodes.includes(node) ? `${node}/${port}` : `${node}.${port}`;
}

/** Promotes initializers to graph inputs (as buildTrainStep does), for a forward-only model fed current values. */
function promote(model: Model, names: string[], outputs: ValueInfo[]): Model {
  const initializers = new Map(model.graph.initializers);
  const inputs = [...model.graph.inputs];
  for (const n of names) {
    const t = initializers.get(n)!;
    initializers.delete(n);
    inputs.push({ name: n, dtype: t.dtype, shape: [...t.dims] });
  }
  return { ...model, graph: { ...model.graph, inputs, initializers, outputs } };
}

export async function buildTraining(o: BuildOptions): Promise<BuiltTraining> {
  const { plan, executor, baseDir, catalog } = o;
  const doc = plan.doc;
  const ports = lossPorts(doc, catalog, o.objective);
  const lossNodes = ports.map((p) => p.node);
  const requested = ports.filter((p) => plan.trainNodes.includes(p.node));
  if (requested.length === 0) throw new TrainError(`the loss reads ${lossNodes.join(', ')}, but none of them trains or follows a trained node`);

  // LM labels: through the merge node (with_labels) when there is one, else aligned to the LM tokens directly.
  const decoder = o.objective === 'lm' ? lossNodes[0] : undefined;
  const merge = decoder ? doc.nodes.find((n) => n.type === 'llm.merge_image_text' && ancestorsOf(doc, [decoder]).has(n.id)) : undefined;
  const prefixOutputs: Array<{ node: string; port: string }> = [];
  let labelInput: string | undefined;
  let labelsValue: string | undefined;
  if (decoder) {
    if (merge) {
      (merge.params as Record<string, unknown>).with_labels = true;
      labelInput = `${merge.id}/token_labels`;
      labelsValue = valueName(plan, merge.id, 'labels');
      if (!plan.trainNodes.includes(merge.id)) prefixOutputs.push({ node: merge.id, port: 'labels' });
    } else {
      // The tokenizer's ids reach the decoder through an embedding node, or directly (a decoder that embeds inside).
      const tokEdge = doc.edges.find(
        (e) =>
          doc.nodes.find((n) => n.id === e.from.node)?.type === 'text.tokenize' &&
          (e.to.node === decoder ? e.to.port === 'input_ids' : ancestorsOf(doc, [decoder]).has(e.to.node)),
      );
      if (!tokEdge) throw new TrainError(`cannot find the tokenizer whose ids reach decoder '${decoder}'`);
      labelsValue = `${tokEdge.from.node}.labels`;
    }
  }

  const composed: ComposedModel = await executor.fuse(doc, baseDir, plan.trainNodes, {
    dedupe: false,
    outputs: requested,
    onlyRequestedOutputs: true,
  });
  const model = composed.model;
  const graph = model.graph;
  const b = new GraphBuilder(graph);

  // Tie the shared word embedding: an Embed tokens node reads its decoder's table (one trainable tensor).
  for (const id of plan.trainNodes) {
    const n = doc.nodes.find((x) => x.id === id)!;
    if (n.type !== 'llm.embed_tokens') continue;
    const dec = doc.edges.find((e) => e.from.node === id) ? downstreamDecoder(doc, id) : undefined;
    if (!dec || !plan.trainNodes.includes(dec)) continue;
    const from = `${id}/${WORD_EMBEDDING}`;
    const to = `${dec}/${WORD_EMBEDDING}`;
    if (!graph.initializers.has(to) || !graph.initializers.has(from)) continue;
    graph.initializers.delete(from);
    for (const node of graph.nodes) node.inputs = node.inputs.map((i) => (i === from ? to : i));
    composed.weights.set(id, (composed.weights.get(id) ?? []).filter((w) => w !== from));
  }

  // Decoder inputs the document leaves open: positions come from the mask; the past is empty (fed as length 0).
  const pastInputs: ValueInfo[] = [];
  for (const inp of [...graph.inputs]) {
    const slash = inp.name.indexOf('/');
    if (slash < 0) continue;
    const node = inp.name.slice(0, slash);
    const port = inp.name.slice(slash + 1);
    if (port === 'position_ids') {
      const maskEdge = doc.edges.find((e) => e.to.node === node && e.to.port === 'attention_mask');
      if (!maskEdge) throw new TrainError(`decoder '${node}': its attention_mask is not connected, so positions cannot be derived`);
      const mask = valueName(plan, maskEdge.from.node, maskEdge.from.port);
      graph.inputs = graph.inputs.filter((v) => v.name !== inp.name);
      const pos = b.sub(b.op('CumSum', [mask, b.scalar(1, 'int64')]), b.scalar(1, 'int64'));
      b.op('Where', [b.op('Equal', [mask, b.scalar(0, 'int64')]), b.scalar(1, 'int64'), pos], {}, { outputs: [inp.name] });
    } else if (port.startsWith('past_key_values.')) {
      pastInputs.push(inp);
    } else if (port === 'use_cache_branch') {
      // A merged decoder trains on the whole sequence with an empty past: its If takes the no-cache branch,
      // which the autodiff inlines (the condition is this constant).
      graph.inputs = graph.inputs.filter((v) => v.name !== inp.name);
      b.op('Constant', [], { value: { dtype: 'bool', dims: [1], data: Uint8Array.of(0) } }, { outputs: [inp.name] });
    }
  }

  const ensureInput = (name: string, dtype: 'int64' | 'float32', shape: Dim[]) => {
    if (!graph.inputs.some((v) => v.name === name) && !graph.nodes.some((n) => n.outputs.includes(name))) b.input(name, dtype, shape);
  };

  // The objective.
  const metricOutputs: BuiltTraining['metricOutputs'] = {};
  let masking: BuiltTraining['masking'];
  const heads: TrainableRef[] = [];
  let loss: string;
  const extraOutputs: ValueInfo[] = [];
  if (o.objective === 'lm') {
    const logits = valueName(plan, decoder!, 'logits');
    ensureInput(labelsValue!, 'int64', ['batch', 'sequence']);
    // Causal shift: position t predicts token t+1.
    const shifted = b.op('Slice', [logits, b.ints([0]), b.ints([-1]), b.ints([1])]);
    const targets = b.op('Slice', [labelsValue!, b.ints([1]), b.ints([Number.MAX_SAFE_INTEGER]), b.ints([1])]);
    const ce = crossEntropyLoss(b, shifted, targets);
    loss = ce.loss;
    const predicted = b.op('ArgMax', [shifted], { axis: -1, keepdims: 0 });
    const valid = b.op('Not', [b.op('Equal', [targets, b.scalar(-100, 'int64')])]);
    const hit = b.op('And', [valid, b.op('Equal', [predicted, targets])]);
    const correct = b.op('ReduceSum', [b.cast(hit, 'float32')], { keepdims: 0 }, { outputs: ['train.correct'] });
    const tokens = b.op('Identity', [ce.tokens], {}, { outputs: ['train.tokens'] });
    metricOutputs.correct = correct;
    metricOutputs.tokens = tokens;
    extraOutputs.push({ name: correct, dtype: 'float32', shape: [] }, { name: tokens, dtype: 'float32', shape: [] });
  } else if (o.objective === 'mlm' || o.objective === 'mrm') {
    const enc = lossNodes[0];
    const hidden = valueName(plan, enc, 'last_hidden_state');
    const encWeights = (composed.weights.get(enc) ?? []).map((w) => ({ name: w, t: graph.initializers.get(w)! })).filter((w) => w.t);
    const rng = new Rng(doc.seed ?? 0).fork(`${o.objective}-head`);
    const inputEdge = (port: string) => doc.edges.find((e) => e.to.node === enc && e.to.port === port);
    if (o.objective === 'mlm') {
      const emb = encWeights.find((w) => /word_embeddings?\.weight$|embed_tokens\.weight$|token_embedding\.weight$/.test(w.name) && w.t.dims.length === 2);
      if (!emb) throw new TrainError(`MLM: encoder '${enc}' has no word-embedding weight to size (and tie) the prediction head`);
      const [V, D] = emb.t.dims;
      const head = addMlmHead(b, hidden, D, V, emb.name, rng);
      heads.push(...[...head.heads.init.keys()].map((name) => ({ name, node: '', weight: name })));
      const labels = b.input(MLM.labels, 'int64', ['batch', 'sequence']);
      const ce = crossEntropyLoss(b, head.logits, labels);
      loss = ce.loss;
      const predicted = b.op('ArgMax', [head.logits], { axis: -1, keepdims: 0 });
      const valid = b.op('Not', [b.op('Equal', [labels, b.scalar(-100, 'int64')])]);
      const hit = b.op('And', [valid, b.op('Equal', [predicted, labels])]);
      metricOutputs.correct = b.op('ReduceSum', [b.cast(hit, 'float32')], { keepdims: 0 }, { outputs: ['train.correct'] });
      metricOutputs.tokens = b.op('Identity', [ce.tokens], {}, { outputs: ['train.tokens'] });
      extraOutputs.push({ name: metricOutputs.correct, dtype: 'float32', shape: [] }, { name: metricOutputs.tokens, dtype: 'float32', shape: [] });
      const ids = inputEdge('input_ids');
      if (!ids) throw new TrainError(`MLM: encoder '${enc}' has no input_ids connected`);
      const mask = inputEdge('attention_mask');
      masking = { kind: 'mlm', idsInput: `${ids.from.node}.${ids.from.port}`, maskInput: mask ? `${mask.from.node}.${mask.from.port}` : undefined, tokenizeNode: ids.from.node };
    } else {
      const conv = graph.nodes.find((n) => n.opType === 'Conv' && n.name.startsWith(`${enc}/`) && graph.initializers.get(n.inputs[1])?.dims.length === 4);
      const kernel = conv && graph.initializers.get(conv.inputs[1])!;
      if (!kernel) throw new TrainError(`MRM: encoder '${enc}' has no patch-embedding convolution to take the patch size from`);
      const [D, C, p] = kernel.dims;
      const mrm = addMrmLoss(b, hidden, D, C * p * p, rng);
      heads.push(...[...mrm.heads.init.keys()].map((name) => ({ name, node: '', weight: name })));
      loss = mrm.loss;
      const pix = inputEdge('pixel_values');
      if (!pix) throw new TrainError(`MRM: encoder '${enc}' has no pixel_values connected`);
      masking = { kind: 'mrm', pixelInput: `${pix.from.node}.${pix.from.port}`, patch: p };
    }
  } else if (o.objective === 'diffusion') {
    const setup = diffusionSetup(doc);
    loss = addDiffusionLoss(b, graph, valueName(plan, setup.conditioning.node, setup.conditioning.port), valueName(plan, setup.unet, 'out_sample'));
  } else if (o.objective === 'align') {
    const { conditioning } = diffusionSetup(doc);
    loss = mseLoss(b, valueName(plan, conditioning.node, conditioning.port), b.input(ALIGN_TARGET, 'float32', ['batch', 'tokens', 'width']));
  } else {
    const [img, txt] = ports.map((p) => valueName(plan, p.node, p.port));
    for (const p of ports) if (!plan.trainNodes.includes(p.node)) ensureInput(valueName(plan, p.node, p.port), 'float32', ['batch', 'width']);
    b.initializer(LOGIT_SCALE, { dtype: 'float32', dims: [], data: new Float32Array([LOGIT_SCALE_INIT]) });
    const clamped = b.op('Clip', [LOGIT_SCALE, b.scalar(0), b.scalar(LOGIT_SCALE_MAX)]);
    const itc = infoNceLoss(b, img, txt, { logScale: clamped });
    loss = itc.loss;
    const logits = b.op('Identity', [itc.logits], {}, { outputs: ['train.itc_logits'] });
    metricOutputs.logits = logits;
    extraOutputs.push({ name: logits, dtype: 'float32', shape: ['batch', 'batch'] });
    heads.push({ name: LOGIT_SCALE, node: '', weight: LOGIT_SCALE });
  }
  // Trainables: weights of unfrozen nodes and adapter weights (+ trainer heads), mapped back to node and name.
  const trainables: TrainableRef[] = [];
  const adapterWeights = new Map<string, Set<string>>();
  for (const id of plan.trainable) {
    const adapters = await executor.adaptersOf(doc, baseDir, id);
    adapterWeights.set(id, new Set(adapters.trainable));
    const frozenBase = doc.nodes.find((n) => n.id === id)!.frozen && !nodeTrainsItself(doc, catalog, id);
    const names = frozenBase ? adapters.trainable.map((w) => `${id}/${w}`) : (composed.weights.get(id) ?? []);
    for (const fused of names) {
      if (!graph.initializers.has(fused)) continue;
      const slash = fused.indexOf('/');
      trainables.push({ name: fused, node: fused.slice(0, slash), weight: fused.slice(slash + 1) });
    }
    for (const aux of adapters.auxLosses) {
      loss = b.add(loss, b.mul(`${id}/${aux.output}`, b.scalar(aux.coefficient)));
    }
  }
  trainables.push(...heads);
  const seen = new Set<string>();
  const unique = trainables.filter((t) => (seen.has(t.name) ? false : (seen.add(t.name), true)));
  if (unique.length === 0) throw new TrainError(`the trainable nodes (${plan.trainable.join(', ')}) have no weights to train`);
  const lossName = b.op('Identity', [loss], {}, { outputs: ['train.loss_value'] });
  const initial = new Map<string, Tensor>();
  for (const t of unique) initial.set(t.name, graph.initializers.get(t.name)!);

  const evalModel = promote(model, unique.map((t) => t.name), [
    { name: lossName, dtype: 'float32', shape: [] },
    ...extraOutputs,
  ]);
  const noDecay = (p: string) => (p === LOGIT_SCALE || /(bias|norm|ln|layernorm)[^/]*$/i.test(p) || graph.initializers.get(p)!.dims.length <= 1 ? 0 : o.weightDecay);
  let step: TrainStep;
  try {
    step = buildTrainStep(model, {
      loss: lossName,
      trainable: unique.map((t) => t.name),
      optimizer: o.optimizer,
      maxGradNorm: o.maxGradNorm,
      weightDecayOf: noDecay,
      extraOutputs: extraOutputs.map((e) => e.name),
    });
  } catch (e) {
    throw new TrainError(`cannot build the training step: ${(e as Error).message}`);
  }

  let accumulation: BuiltTraining['accumulation'];
  if (o.accumulate) {
    try {
      accumulation = {
        grad: buildGradStep(model, { loss: lossName, trainable: unique.map((t) => t.name), extraOutputs: extraOutputs.map((e) => e.name) }),
        apply: buildApplyStep(initial, { optimizer: o.optimizer, maxGradNorm: o.maxGradNorm, weightDecayOf: noDecay }),
      };
    } catch (e) {
      throw new TrainError(`cannot build the gradient-accumulation models: ${(e as Error).message}`);
    }
  }

  const trained = new Set(unique.map((t) => t.name));
  const dataInputs = step.model.graph.inputs.filter(
    (v) => !trained.has(v.name) && !v.name.startsWith('optim.') && !step.params.some((p) => p.state.some((s) => s.input === v.name)) && !pastInputs.some((p) => p.name === v.name),
  );

  // The frozen prefix: everything the training model reads from frozen ONNX nodes.
  let prefix: BuiltTraining['prefix'] = null;
  if (plan.prefixNodes.length > 0) {
    const wanted = [...prefixOutputs];
    for (const v of dataInputs) {
      const dot = v.name.indexOf('.');
      const node = v.name.slice(0, dot);
      if (dot > 0 && plan.prefixNodes.includes(node)) wanted.push({ node, port: v.name.slice(dot + 1) });
    }
    if (wanted.length > 0) {
      const fusedPrefix = await executor.fuse(doc, baseDir, plan.prefixNodes, { outputs: wanted, onlyRequestedOutputs: true });
      closeDecoderInputs(fusedPrefix.model.graph, doc, (node, port) => (plan.prefixNodes.includes(node) ? `${node}/${port}` : `${node}.${port}`));
      const outputs = new Map<string, string>();
      for (const w of wanted) outputs.set(`${w.node}/${w.port}`, `${w.node}.${w.port}`);
      prefix = { model: fusedPrefix.model, outputs };
    }
  }
  const nodeWeights = new Map<string, NodeWeights>();
  for (const t of unique) {
    if (!t.node || nodeWeights.has(t.node)) continue;
    const all = (composed.weights.get(t.node) ?? []).filter((f) => step.model.graph.initializers.has(f) || trained.has(f));
    nodeWeights.set(t.node, { fused: all, adapters: adapterWeights.get(t.node) ?? new Set() });
  }
  return { step, evalModel, prefix, trainables: unique, initial, dataInputs, pastInputs, labelInput, metricOutputs, lossNodes, nodeWeights, accumulation, masking };
}

/**
 * A frozen decoder inside the prefix model: positions from its attention mask (as in the training model) and an
 * empty past built in the graph ([B, kvH, 0, hd]), so the prefix needs only data inputs.
 */
function closeDecoderInputs(graph: Graph, doc: GraphDocument, nameOf: (node: string, port: string) => string): void {
  const b = new GraphBuilder(graph);
  for (const inp of [...graph.inputs]) {
    const slash = inp.name.indexOf('/');
    if (slash < 0) continue;
    const node = inp.name.slice(0, slash);
    const port = inp.name.slice(slash + 1);
    if (port === 'use_cache_branch') {
      graph.inputs = graph.inputs.filter((v) => v.name !== inp.name);
      b.op('Constant', [], { value: { dtype: 'bool', dims: [1], data: Uint8Array.of(0) } }, { outputs: [inp.name] });
      continue;
    }
    if (port !== 'position_ids' && !port.startsWith('past_key_values.')) continue;
    const maskEdge = doc.edges.find((e) => e.to.node === node && e.to.port === 'attention_mask');
    if (!maskEdge) throw new TrainError(`decoder '${node}': its attention_mask is not connected, so positions cannot be derived`);
    const mask = nameOf(maskEdge.from.node, maskEdge.from.port);
    graph.inputs = graph.inputs.filter((v) => v.name !== inp.name);
    if (port === 'position_ids') {
      const pos = b.sub(b.op('CumSum', [mask, b.scalar(1, 'int64')]), b.scalar(1, 'int64'));
      b.op('Where', [b.op('Equal', [mask, b.scalar(0, 'int64')]), b.scalar(1, 'int64'), pos], {}, { outputs: [inp.name] });
    } else {
      const past = emptyPast(inp, 1);
      const batch = b.op('Slice', [b.shape(mask), b.ints([0]), b.ints([1])]);
      const dims = b.concat([batch, b.ints(past.dims.slice(1))], 0);
      b.op('ConstantOfShape', [dims], { value: { dtype: 'float32', dims: [1], data: new Float32Array([0]) } }, { outputs: [inp.name] });
    }
  }
}


/** Zero-length past key/values for a batch of `batch` rows (shape [B, kvH, 0, hd] from the input's declared dims). */
export function emptyPast(info: ValueInfo, batch: number): Tensor {
  const shape = info.shape ?? [];
  const kvH = typeof shape[1] === 'number' ? shape[1] : null;
  const hd = typeof shape[3] === 'number' ? shape[3] : null;
  if (kvH === null || hd === null) throw new OnnxError(`input '${info.name}': past key/value dims must be known`);
  return { dtype: 'float32', dims: [batch, kvH, 0, hd], data: new Float32Array(0) };
}
