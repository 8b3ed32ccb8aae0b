// Samples → tensors. Each sample becomes the values the graph's host nodes would hand to its ONNX nodes (pixels
// through the io.image step, prompts through the graph's own prompt chain and tokenizer), plus LM labels that are
// −100 on the prompt; a batch stacks samples and right-pads sequences (pad id, mask 0, labels −100).

import { type Tensor, OnnxError } from '../../onnx/ir.js';
import { tokenizeParams } from '../../nodes/text.js';
import { labelsParams } from '../../nodes/heads.js';
import { isGeneratingDecoder } from '../../nodes/imported.js';
import type { Catalog } from '../../nodes/catalog.js';
import { encodePng } from '../image.js';
import { type Sample, type ShapesOptionsInput, IMAGE_PLACEHOLDER, createShapesDataset, loadDataset, loadSampleImage, splitSamples } from '../datasets/index.js';
import { hashString } from '../rng.js';
import { hostSteps } from '../host-steps/io.js';
import { textHostSteps, tokenizerFor } from '../host-steps/text.js';
import type { HostStep, HostValue } from '../host-steps/io.js';
import type { GraphDocument } from '../document.js';
import { IGNORE_INDEX } from '../../autodiff/losses.js';
import { type DataPort, TrainError, ancestorsOf, defOf } from './plan.js';
import type { Task } from './recipes.js';
import { DIFFUSION, targetImage } from './objectives.js';

const HOST_STEPS: Record<string, HostStep> = { ...hostSteps, ...textHostSteps };

/** Mid-grey 64×64 input image of text → image samples. */
const BLANK_IMAGE = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(128) };

/** Scene options of the built-in shapes dataset (its seed, split and size come from the training options). */
export type ShapesSceneOptions = Omit<ShapesOptionsInput, 'seed' | 'split' | 'numSamples'>;

export interface DatasetSplits {
  name: string;
  train: Sample[];
  eval: Sample[];
}

/** `shapes` (procedural, no files) or a dataset file (JSONL/CSV captions, COCO, LLaVA; errors name file and line). */
export function loadSplits(
  spec: string,
  opts: { size?: number; seed?: number; evalFraction?: number; shapes?: ShapesSceneOptions } = {},
): DatasetSplits {
  const evalFraction = opts.evalFraction ?? 0.1;
  if (spec === 'shapes') {
    const size = opts.size ?? 256;
    const seed = opts.seed ?? 0;
    const evalSize = Math.max(4, Math.round(size * evalFraction));
    const train = createShapesDataset({ qaTurns: 1, ...opts.shapes, seed, numSamples: size, split: 'train' });
    // Eval measures the pictures as drawn: augmentation is for training.
    const evalSet = createShapesDataset({ qaTurns: 1, ...opts.shapes, augment: 0, seed, numSamples: evalSize, split: 'eval' });
    return { name: 'shapes', train: [...train], eval: [...evalSet] };
  }
  const loaded = loadDataset(spec);
  if (loaded.samples.length === 0) throw new TrainError(`dataset '${spec}' has no samples`);
  if (loaded.samples.length === 1) return { name: spec, train: loaded.samples, eval: [] };
  const { train, eval: evalSet } = splitSamples(loaded.samples, { evalFraction, seed: opts.seed ?? 0 });
  return { name: spec, train, eval: evalSet };
}

/** What a sample says under a task: the user's text (none: the graph's own prompt), its later turns and the target. */
export interface SampleTexts {
  user?: string;
  turns: Array<{ prompt: string; answer: string }>;
  caption?: string;
}

/** The user text and the target for a sample under a task (the trainer's rule; the train-job export writes the same). */
export function sampleTexts(sample: Sample, task: Task): SampleTexts {
  if (task === 'generation') {
    // Text → image: the user asks for the caption's image (as NExT-GPT's instruction data does); no text target.
    if (!sample.caption) throw new TrainError(`sample '${sample.id}' has no caption (the recipe generates images from captions)`);
    return { user: generationRequest(sample.caption, sample.id), turns: [], caption: sample.caption };
  }
  if (task === 'caption') {
    if (!sample.caption) throw new TrainError(`sample '${sample.id}' has no caption (the recipe trains on captions)`);
    return { user: undefined, turns: [], caption: sample.caption };
  }
  if (task === 'vqa' && sample.qa && sample.qa.length > 0) {
    const qa = sample.qa[hashString(sample.id) % sample.qa.length];
    return { user: qa.question, turns: [], caption: qa.answer };
  }
  const conv = sample.conversations;
  if (conv && conv.length >= 2) {
    const pairs: Array<{ prompt: string; answer: string }> = [];
    for (let i = 0; i + 1 < conv.length; i += 2) {
      if (conv[i].from !== 'human' || conv[i + 1].from !== 'gpt') {
        throw new TrainError(`sample '${sample.id}': conversation turn ${i} must be human then gpt`);
      }
      pairs.push({ prompt: conv[i].value.split(IMAGE_PLACEHOLDER).join('').trim(), answer: conv[i + 1].value });
    }
    return { user: pairs[0].prompt, turns: pairs.slice(1), caption: pairs[0].answer };
  }
  if (sample.caption) return { user: undefined, turns: [], caption: sample.caption };
  throw new TrainError(`sample '${sample.id}' has no question/answer, conversation or caption for the '${task}' task`);
}

/** What a tokenizer node's ids are for: the LM sequence, an instruction for the Q-Former, or a text tower. */
export type TokenRole = 'lm' | 'instruction' | 'text';

export interface PreparedSample {
  /** Batch-1 values by data name (`node.port`, and `node/port` for trainer-fed inputs such as token labels). */
  values: Map<string, Tensor>;
  /** The text the LM should produce (eval: generation exact match). */
  target?: string;
  /** The user text given to the graph's prompt input (eval: generation). */
  prompt?: string;
}

/** How a user asks for an image: one phrasing per sample, fixed by its id. */
const REQUESTS = ['Show me a picture of {caption}.', 'Draw {caption}.', 'Generate an image of {caption}.', '{caption}'];

/** The user's request for the image a caption describes ("Show me a picture of a red circle."). */
export function generationRequest(caption: string, sampleId: string): string {
  const text = caption.replace(/[.\s]+$/, '');
  return REQUESTS[hashString(`request|${sampleId}`) % REQUESTS.length].replace('{caption}', text);
}

/** Right-padding value per data name: labels −100, ids the pad id, everything else 0. */
export function padValueOf(name: string, padId: number): number {
  if (name.endsWith('labels')) return IGNORE_INDEX;
  if (name.endsWith('input_ids')) return padId;
  return 0;
}

/**
 * What a tokenizer node's ids are for. Ids that go straight into a Q-Former's instruction input are its instruction
 * (InstructBLIP), even though the Q-Former's output reaches the LLM further on: they must never carry the answer.
 * Otherwise ids that reach a decoder are the LM sequence, and the rest feed a text tower.
 */
export function tokenRole(doc: GraphDocument, tokenizeNode: string): TokenRole {
  const direct = doc.edges.filter((e) => e.from.node === tokenizeNode);
  const typeOf = (id: string) => doc.nodes.find((n) => n.id === id)?.type;
  if (direct.some((e) => typeOf(e.to.node) === 'projector.qformer' && e.to.port.startsWith('qformer_'))) return 'instruction';
  const seen = new Set<string>();
  const stack = [tokenizeNode];
  while (stack.length) {
    const cur = stack.pop()!;
    for (const e of doc.edges.filter((x) => x.from.node === cur)) {
      const to = doc.nodes.find((n) => n.id === e.to.node);
      if (to && isGeneratingDecoder(to)) return 'lm';
      if (!seen.has(e.to.node)) {
        seen.add(e.to.node);
        stack.push(e.to.node);
      }
    }
  }
  return 'text';
}

export interface SampleBuilderOptions {
  doc: GraphDocument;
  catalog: Catalog;
  baseDir: string;
  dataPorts: DataPort[];
  task: Task;
  /** Fused input name that takes LM labels aligned to the LM tokens (merge token_labels), if any. */
  labelInput?: string;
  /** Diffusion objective: also produce x₀ (DIFFUSION.x0) from each sample's image at this size. */
  targetImage?: { size: number; channels: number };
}

export class SampleBuilder {
  private readonly roles = new Map<string, TokenRole>();
  private readonly cache = new Map<string, PreparedSample>();
  readonly padId: number;
  readonly eosId: number | undefined;

  constructor(private readonly o: SampleBuilderOptions) {
    let padId = 0;
    let eos: number | undefined;
    for (const d of o.dataPorts) {
      if (d.nodeType === 'text.tokenize') {
        this.roles.set(d.node, tokenRole(o.doc, d.node));
        const tok = this.tokenizerOf(d.node);
        padId = tok.specialIds.pad ?? 0;
        eos = tok.specialIds.eos;
      } else if (d.nodeType === 'text.labels') {
        // A zero-shot head's label tokens: in training, the sample's caption is the one text (CLIP on captions).
        const tok = tokenizerFor(labelsParams.parse(o.doc.nodes.find((n) => n.id === d.node)!.params).tokenizer, o.baseDir);
        padId = tok.specialIds.pad ?? tok.specialIds.eos ?? 0;
      } else if (d.nodeType === 'prompt.few_shot') {
        // Its pixel_values come out of the host chain (examples + the sample's image), as at run time.
      } else if (d.nodeType === 'diffusion.noise' && o.task === 'generation') {
        // x_t and t are drawn per batch by the trainer (objectives.ts diffusionFeeds).
      } else if (d.nodeType !== 'io.image') {
        throw new TrainError(
          `node '${d.node}' (${d.nodeType}) feeds the model, but training can only feed images (io.image) and tokens (text.tokenize)`,
        );
      }
    }
    this.padId = padId;
    this.eosId = eos;
  }

  /** The tokenizer node whose ids make up the LM sequence (labels align to it), if any. */
  get lmTokenizer(): string | undefined {
    return [...this.roles].find(([, r]) => r === 'lm')?.[0];
  }

  private tokenizerOf(node: string) {
    const params = tokenizeParams.parse(this.o.doc.nodes.find((n) => n.id === node)!.params);
    return tokenizerFor(params.tokenizer, this.o.baseDir);
  }


  /** The user text and the target for a sample under this task. */
  private textsOf(sample: Sample): SampleTexts {
    return sampleTexts(sample, this.o.task);
  }

  /**
   * Runs the host chain up to `target` (exclusive when `exclusive`): text and prompt nodes with `user` as the graph's
   * text input, image nodes with the sample's image (few-shot prompts interleave it with their examples).
   */
  private async runHostChain(
    target: string,
    user: string | undefined,
    imageBytes: () => Promise<Uint8Array>,
    exclusive: boolean,
  ): Promise<Record<string, Record<string, HostValue>>> {
    const { doc, catalog } = this.o;
    const chain = ancestorsOf(doc, [target]);
    if (exclusive) chain.delete(target);
    const order = doc.nodes.map((n) => n.id).filter((id) => chain.has(id));
    const outputs: Record<string, Record<string, HostValue>> = {};
    for (const id of order) {
      const def = defOf(doc, catalog, id);
      const step = def.host ? HOST_STEPS[def.host] : undefined;
      if (!step || !def.host || !(def.host === 'io.text' || def.host === 'io.image' || def.host.startsWith('prompt.'))) {
        throw new TrainError(`node '${id}' (${def.info.type}) sits before '${target}': training supports image, text and prompt nodes there`);
      }
      const inputs: Record<string, HostValue> = {};
      for (const e of doc.edges.filter((x) => x.to.node === id)) inputs[e.to.port] = outputs[e.from.node][e.from.port];
      const node = doc.nodes.find((n) => n.id === id)!;
      const runInput =
        def.host === 'io.text' && user !== undefined ? { text: user } : def.host === 'io.image' ? { bytes: await imageBytes() } : undefined;
      outputs[id] = await step(node.params, inputs, { nodeId: id, baseDir: this.o.baseDir, runInput });
    }
    return outputs;
  }

  /** Runs the host text chain feeding `tokenizeNode` with `user` as the graph's text input. */
  private async renderPrompt(tokenizeNode: string, user: string | undefined, imageBytes: () => Promise<Uint8Array>): Promise<string> {
    const { doc } = this.o;
    const outputs = await this.runHostChain(tokenizeNode, user, imageBytes, true);
    const edge = doc.edges.find((e) => e.to.node === tokenizeNode && e.to.port === 'text');
    if (!edge) throw new TrainError(`tokenizer '${tokenizeNode}' has no text input`);
    const text = outputs[edge.from.node]?.[edge.from.port];
    if (typeof text !== 'string') throw new TrainError(`tokenizer '${tokenizeNode}': its text input is not text`);
    return text;
  }

  async prepare(sample: Sample): Promise<PreparedSample> {
    const hit = this.cache.get(sample.id);
    if (hit) return hit;
    const values = new Map<string, Tensor>();
    const texts = this.textsOf(sample);
    const out: PreparedSample = { values, target: texts.caption, prompt: texts.user };
    let png: Uint8Array | undefined;
    // Text → image gets a blank input image (the dataset image is the target, not a hint).
    const imageBytes = async () => (png ??= await encodePng(this.o.task === 'generation' ? BLANK_IMAGE : await loadSampleImage(sample)));
    for (const d of this.o.dataPorts) {
      if (values.has(d.name) || d.nodeType === 'diffusion.noise') continue;
      const node = this.o.doc.nodes.find((n) => n.id === d.node)!;
      if (d.nodeType === 'io.image') {
        const res = await HOST_STEPS['io.image'](node.params, {}, { nodeId: d.node, baseDir: this.o.baseDir, runInput: { bytes: await imageBytes() } });
        values.set(d.name, res[d.port] as Tensor);
        continue;
      }
      if (d.nodeType === 'prompt.few_shot') {
        const value = (await this.runHostChain(d.node, texts.user, imageBytes, false))[d.node][d.port];
        if (typeof value === 'string' || value === undefined) throw new TrainError(`node '${d.node}': output '${d.port}' is not a tensor`);
        values.set(d.name, value);
        continue;
      }
      if (d.nodeType === 'text.labels') {
        const p = labelsParams.parse(node.params);
        const tok = tokenizerFor(p.tokenizer, this.o.baseDir);
        const eos = tok.specialIds.eos;
        if (!texts.caption) throw new TrainError(`sample '${sample.id}' has no caption for the labels node '${d.node}'`);
        let ids = tok.encode(texts.caption, { addSpecialTokens: true });
        if (eos !== undefined && ids[ids.length - 1] !== eos) ids = [...ids.slice(0, p.max_length - 1), eos];
        ids = ids.slice(0, p.max_length);
        values.set(`${d.node}.input_ids`, intRow(ids));
        values.set(`${d.node}.attention_mask`, intRow(ids.map(() => 1)));
        continue;
      }
      if (this.o.task === 'generation') {
        // Text → image: every tokenizer sees the request exactly as a run does (the tokenize step itself, padding
        // included), so the conditioning a generator learns from is the one it gets when the user types.
        const prompt = await this.renderPrompt(d.node, texts.user, imageBytes);
        const res = await HOST_STEPS['text.tokenize'](node.params, { text: prompt }, { nodeId: d.node, baseDir: this.o.baseDir });
        values.set(`${d.node}.input_ids`, res.input_ids as Tensor);
        values.set(`${d.node}.attention_mask`, res.attention_mask as Tensor);
        continue;
      }
      const role = this.roles.get(d.node)!;
      const params = tokenizeParams.parse(node.params);
      const tok = this.tokenizerOf(d.node);
      const user = role === 'text' ? texts.caption : texts.user;
      const prompt = await this.renderPrompt(d.node, user, imageBytes);
      let ids = tok.encode(prompt, { addSpecialTokens: params.add_special_tokens });
      let labels = ids.map(() => IGNORE_INDEX);
      if (role === 'lm') {
        const eos = tok.specialIds.eos;
        const answer = (text: string) => [...tok.encode(text, { addSpecialTokens: false }), ...(eos === undefined ? [] : [eos])];
        const target = answer(texts.caption ?? '');
        ids = [...ids, ...target];
        labels = [...labels, ...target];
        for (const turn of texts.turns) {
          const q = tok.encode(turn.prompt, { addSpecialTokens: false });
          const a = answer(turn.answer);
          ids = [...ids, ...q, ...a];
          labels = [...labels, ...q.map(() => IGNORE_INDEX), ...a];
        }
        if (ids.length > params.max_length) {
          ids = ids.slice(0, params.max_length);
          labels = labels.slice(0, params.max_length);
        }
        if (!labels.some((l) => l !== IGNORE_INDEX)) {
          throw new TrainError(`sample '${sample.id}': no target token is left within max_length ${params.max_length} of tokenizer '${d.node}'`);
        }
        const labelTensor = intRow(labels);
        values.set(`${d.node}.labels`, labelTensor);
        if (this.o.labelInput) values.set(this.o.labelInput, labelTensor);
      } else {
        // Text towers pool at the end-of-text token (CLIP); make sure the sequence has one.
        const eos = tok.specialIds.eos;
        if (role === 'text' && eos !== undefined && ids[ids.length - 1] !== eos) ids = [...ids.slice(0, params.max_length - 1), eos];
        else if (ids.length > params.max_length) ids = ids.slice(0, params.max_length);
      }
      if (ids.length === 0) throw new TrainError(`sample '${sample.id}': tokenizer '${d.node}' produced no tokens`);
      values.set(`${d.node}.input_ids`, intRow(ids));
      values.set(`${d.node}.attention_mask`, intRow(ids.map(() => 1)));
    }
    if (this.o.targetImage) {
      const { size, channels } = this.o.targetImage;
      values.set(DIFFUSION.x0, await targetImage(await loadSampleImage(sample), size, channels, `sample '${sample.id}'`));
    }
    this.cache.set(sample.id, out);
    return out;
  }
}

function intRow(values: number[]): Tensor {
  return { dtype: 'int64', dims: [1, values.length], data: BigInt64Array.from(values.map(BigInt)) };
}

/**
 * Stacks batch-1 tensors along axis 0, right-padding every other axis to the longest row with `pad`.
 * Rows must agree in rank and dtype.
 */
export function collate(name: string, rows: Tensor[], pad: number): Tensor {
  if (rows.length === 0) throw new TrainError(`collate '${name}': empty batch`);
  const first = rows[0];
  const rank = first.dims.length;
  for (const r of rows) {
    if (r.dims.length !== rank || r.dtype !== first.dtype) {
      throw new TrainError(`collate '${name}': rows differ in rank or dtype ([${r.dims}] ${r.dtype} vs [${first.dims}] ${first.dtype})`);
    }
    if (r.dims[0] !== 1) throw new TrainError(`collate '${name}': expected batch-1 rows, got [${r.dims}]`);
  }
  const dims = first.dims.map((_, a) => (a === 0 ? rows.length : Math.max(...rows.map((r) => r.dims[a]))));
  const rowSize = dims.slice(1).reduce((n, d) => n * d, 1);
  const total = rowSize * rows.length;
  let data: Float32Array | BigInt64Array;
  if (first.dtype === 'float32') data = new Float32Array(total).fill(pad);
  else if (first.dtype === 'int64') data = new BigInt64Array(total).fill(BigInt(pad));
  else throw new OnnxError(`collate '${name}': dtype ${first.dtype} is not supported`);
  const outStrides = strides(dims);
  rows.forEach((r, b) => {
    const inStrides = strides(r.dims);
    const n = r.data.length;
    const idx = new Array<number>(rank).fill(0);
    for (let i = 0; i < n; i++) {
      let rem = i;
      for (let a = 0; a < rank; a++) {
        idx[a] = Math.floor(rem / inStrides[a]);
        rem -= idx[a] * inStrides[a];
      }
      let o = b * outStrides[0];
      for (let a = 1; a < rank; a++) o += idx[a] * outStrides[a];
      (data as Float32Array)[o] = (r.data as Float32Array)[i];
    }
  });
  return { dtype: first.dtype, dims, data } as Tensor;
}

function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let a = dims.length - 2; a >= 0; a--) s[a] = s[a + 1] * dims[a + 1];
  return s;
}
