// Hugging Face export (`vlmc export GRAPH --format hf`): a folder `from_pretrained` loads — config.json,
// model.safetensors (sharded with model.safetensors.index.json past `maxShardBytes`) in transformers' state-dict
// names, tokenizer.json + tokenizer_config.json, generation_config.json, preprocessor_config.json and
// processor_config.json for image models, and a README.md model card. Which architecture a graph is, its config
// and the tensor names come from the architecture files (electron/formats/hf/architectures/<arch>.ts `fromGraph`),
// the same files the import reads; the weights come from the built fragments, so seeded, trained and
// folder-backed weights all export.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { type GraphDocument } from '../engine/document.js';
import { Executor, RunPlan } from '../engine/executor.js';
import { BUILTIN_TOKENIZER_PATH } from '../engine/tokenizer.js';
import { CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD } from '../engine/image.js';
import { hasErrors, validateDocument } from '../engine/validate.js';
import { ARCHITECTURES } from '../formats/hf/architectures/index.js';
import type { HfArchitecture, HfExportPlan, HfExportSource } from '../formats/hf/architectures/types.js';
import { type Tensor, float32ToBfloat16Bits, float32ToFloat16Bits, tensorSize } from '../onnx/ir.js';
import { readSafetensorsHeader, serializeSafetensors } from '../onnx/safetensors.js';
import { type CheckpointMeta, CheckpointMetaSchema, findCheckpoint } from '../engine/trainer/checkpoint.js';
import type { ExportProgress, ExportResult } from './bundle.js';
import { type ExportedFile, ExportError, composerVersion, prepareExportDir, writeExportFile, writeManifest } from './manifest.js';
import { exportPeftAdapters, nodeExportWeights } from './peft.js';

export const HF_DTYPES = ['f32', 'f16', 'bf16'] as const;
export type HfDtype = (typeof HF_DTYPES)[number];
const TORCH_DTYPE: Record<HfDtype, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/** save_pretrained's default max_shard_size ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

export interface HfExportOptions {
  baseDir: string;
  outDir: string;
  dtype?: HfDtype;
  /** Fold each node's LoRA into its base weights; otherwise adapters are written beside the base in PEFT format. */
  merge?: boolean;
  /** Shard the weights past this many bytes (save_pretrained's max_shard_size). */
  maxShardBytes?: number;
  executor?: Executor;
  onProgress?: (p: ExportProgress) => void;
}

/** Why a node type has no place in any transformers class Composer writes. */
const UNEXPRESSED: Record<string, string> = {
  'projector.gated_xattn': "Flamingo's single gated cross-attention block has no transformers class (IDEFICS puts one in every layer, with other names)",
  'projector.perceiver': "Flamingo's perceiver resampler exists in transformers only inside IDEFICS, whose layout this graph does not have",
  'projector.abstractor': "mPLUG-Owl's visual abstractor has no transformers class",
  'outproj.signal_tokens': "NExT-GPT's output projection to a generator has no transformers class",
  'generator.unet': 'a diffusion UNet is a diffusers model, not a transformers one',
  'projector.qformer': 'a Q-Former has a transformers class only in Blip2/InstructBlipForConditionalGeneration, where it feeds the language model itself (MiniGPT-4 puts a linear projector between them)',
  'encoder.eva_vit': 'an EVA ViT has a transformers class only in Blip2/InstructBlipForConditionalGeneration, feeding a Q-Former that feeds the language model',
  'projector.linear': "MiniGPT-4's linear projector after the Q-Former has no transformers class",
  'encoder.clip_vit': 'a CLIP tower goes into a transformers class alone (CLIPModel / CLIPVisionModel) or in a LLaVA-shaped graph (CLIP ViT → 2-layer MLP projector → <image> scatter)',
};

/** Architectures whose graphs contain a language model are tried before the plain language models. */
const COMPOSITE_FIRST = ['llava', 'blip2', 'instructblip', 'clip', 'siglip'];

function exportOrder(): HfArchitecture[] {
  const rank = (a: HfArchitecture) => (COMPOSITE_FIRST.includes(a.id) ? COMPOSITE_FIRST.indexOf(a.id) : COMPOSITE_FIRST.length);
  return ARCHITECTURES.filter((a) => a.fromGraph).sort((a, b) => rank(a) - rank(b));
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizer files

const tokenizerJsonSchema = z.looseObject({
  added_tokens: z.array(z.looseObject({ id: z.number().int(), content: z.string(), special: z.boolean().optional() })).default([]),
  model: z.looseObject({ vocab: z.unknown().optional() }).optional(),
});
type TokenizerJson = z.infer<typeof tokenizerJsonSchema>;

const tokenSchema = z.union([z.string(), z.looseObject({ content: z.string() })]).nullable().optional();
const tokenizerConfigSchema = z.looseObject({ bos_token: tokenSchema, eos_token: tokenSchema, pad_token: tokenSchema, unk_token: tokenSchema });

function readJson<T>(file: string, schema: z.ZodType<T>, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ExportError(`${what}: cannot read '${file}': ${(e as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new ExportError(`${what}: '${file}': ${r.error.issues[0].path.join('.') || '(root)'}: ${r.error.issues[0].message}`);
  return r.data;
}

function tokenContent(t: z.infer<typeof tokenSchema>): string | undefined {
  return t == null ? undefined : typeof t === 'string' ? t : t.content;
}

class TokenizerFiles {
  readonly path: string;
  readonly json: TokenizerJson;
  /** tokenizer_config.json beside tokenizer.json, when there is one. */
  readonly configPath?: string;
  constructor(param: string, baseDir: string, what: string) {
    this.path = param === 'builtin' ? BUILTIN_TOKENIZER_PATH : isAbsolute(param) ? param : resolve(baseDir, param);
    this.json = readJson(this.path, tokenizerJsonSchema, what);
    const cfg = join(dirname(this.path), 'tokenizer_config.json');
    if (param !== 'builtin' && existsSync(cfg)) this.configPath = cfg;
  }

  /**
   * This tokenizer rewritten for the export: two ids traded everywhere tokenizer.json names ids (vocab, added tokens,
   * post-processor), and/or the end-of-text token appended by the post-processor (what a text.labels node with
   * append_eos does itself, and what transformers' processors expect the tokenizer to do).
   */
  edited(edit: { swap?: [number, number]; appendEos?: boolean }): TokenizerFiles {
    if (!edit.swap && !edit.appendEos) return this;
    if (this.configPath) throw new ExportError(`tokenizer '${this.path}': cannot be rewritten for the export when a tokenizer_config.json lists its added tokens by id`);
    const raw = JSON.parse(readFileSync(this.path, 'utf8')) as Record<string, unknown>;
    type Post = { type?: string; single?: unknown[]; pair?: unknown[]; special_tokens?: Record<string, { id: string; ids: number[]; tokens: string[] }> };
    const post = (raw.post_processor ?? null) as Post | null;
    if (post && post.type !== 'TemplateProcessing') throw new ExportError(`tokenizer '${this.path}': its ${String(post.type)} post-processor cannot be rewritten (Composer rewrites TemplateProcessing)`);
    if (edit.swap) {
      const [a, b] = edit.swap;
      const swap = (id: number) => (id === a ? b : id === b ? a : id);
      const vocab = (raw.model as Record<string, unknown> | undefined)?.vocab;
      if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) {
        throw new ExportError(`tokenizer '${this.path}': ids ${a} and ${b} must be swapped, which Composer does for tokenizers whose model.vocab maps tokens to ids (WordLevel, BPE, WordPiece)`);
      }
      for (const [k, v] of Object.entries(vocab as Record<string, unknown>)) if (typeof v === 'number') (vocab as Record<string, number>)[k] = swap(v);
      for (const t of (raw.added_tokens as Array<{ id: number }> | undefined) ?? []) t.id = swap(t.id);
      for (const t of Object.values(post?.special_tokens ?? {})) t.ids = t.ids.map(swap);
    }
    const copy = Object.create(TokenizerFiles.prototype) as TokenizerFiles;
    Object.assign(copy, { path: this.path, json: tokenizerJsonSchema.parse(raw) });
    if (edit.appendEos) {
      const eos = copy.specialStrings().eos;
      const eosId = eos === undefined ? undefined : copy.idOf(eos);
      if (eos === undefined || eosId === undefined) throw new ExportError(`tokenizer '${this.path}': has no end-of-text token to append`);
      const mark = { SpecialToken: { id: eos, type_id: 0 } };
      const seq = (id: 'A' | 'B', type: number) => ({ Sequence: { id, type_id: type } });
      const p: Post = post ?? { type: 'TemplateProcessing', single: [seq('A', 0)], pair: [seq('A', 0), seq('B', 1)], special_tokens: {} };
      const endsWithEos = (items: unknown[] | undefined) => JSON.stringify(items?.at(-1)) === JSON.stringify(mark);
      if (!endsWithEos(p.single)) p.single = [...(p.single ?? [seq('A', 0)]), mark];
      if (!endsWithEos(p.pair)) p.pair = [...(p.pair ?? [seq('A', 0), seq('B', 1)]), { SpecialToken: { id: eos, type_id: 1 } }];
      p.special_tokens = { ...(p.special_tokens ?? {}), [eos]: { id: eos, ids: [eosId], tokens: [eos] } };
      raw.post_processor = p;
    }
    Object.assign(copy, { json: tokenizerJsonSchema.parse(raw), text: `${JSON.stringify(raw, null, 2)}\n` });
    return copy;
  }

  /** The tokenizer.json to ship: the file itself, or this object's rewritten copy. */
  contents(): Buffer | string {
    return this.text ?? readFileSync(this.path);
  }

  private readonly text?: string;

  idOf(content: string): number | undefined {
    const added = this.json.added_tokens.find((t) => t.content === content);
    if (added) return added.id;
    const vocab = this.json.model?.vocab;
    if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
      const v = (vocab as Record<string, unknown>)[content];
      if (typeof v === 'number') return v;
    }
    return undefined;
  }

  /** bos / eos / pad / unk strings: the tokenizer_config.json beside it, else the usual spellings among the special tokens. */
  specialStrings(): { bos?: string; eos?: string; pad?: string; unk?: string } {
    if (this.configPath) {
      const c = readJson(this.configPath, tokenizerConfigSchema, 'tokenizer');
      return { bos: tokenContent(c.bos_token), eos: tokenContent(c.eos_token), pad: tokenContent(c.pad_token), unk: tokenContent(c.unk_token) };
    }
    const special = this.json.added_tokens.filter((t) => t.special !== false).map((t) => t.content);
    const pick = (names: string[]) => names.find((n) => special.includes(n));
    return {
      bos: pick(['<s>', '<|begin_of_text|>', '<bos>', '[CLS]']),
      eos: pick(['</s>', '<|endoftext|>', '<|end_of_text|>', '<eos>', '[SEP]']),
      pad: pick(['<pad>', '<|pad|>', '[PAD]']),
      unk: pick(['<unk>', '[UNK]']),
    };
  }

  specialIds(): { bos?: number; eos?: number; pad?: number } {
    const s = this.specialStrings();
    const id = (t?: string) => (t === undefined ? undefined : this.idOf(t));
    return { bos: id(s.bos), eos: id(s.eos), pad: id(s.pad) };
  }

  /** tokenizer_config.json: the original's, with the graph's chat template; or one made from the special tokens. */
  config(chatTemplate: string | undefined): Record<string, unknown> {
    const base: Record<string, unknown> = this.configPath
      ? (JSON.parse(readFileSync(this.configPath, 'utf8')) as Record<string, unknown>)
      : (() => {
          const s = this.specialStrings();
          const added: Record<string, unknown> = {};
          for (const t of this.json.added_tokens) {
            added[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: t.special ?? true };
          }
          return {
            tokenizer_class: 'PreTrainedTokenizerFast',
            added_tokens_decoder: added,
            ...(s.bos ? { bos_token: s.bos } : {}),
            ...(s.eos ? { eos_token: s.eos } : {}),
            ...(s.pad ? { pad_token: s.pad } : {}),
            ...(s.unk ? { unk_token: s.unk } : {}),
            clean_up_tokenization_spaces: false,
          };
        })();
    if (chatTemplate) base.chat_template = chatTemplate;
    return base;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Weights

function castTensor(t: Tensor, dtype: HfDtype, what: string): Tensor {
  if (t.dtype !== 'float32') {
    if (t.dtype === TORCH_DTYPE[dtype]) return t;
    throw new ExportError(`${what}: weight is ${t.dtype}; the export writes float32 weights as ${dtype}`);
  }
  if (dtype === 'f32') return t;
  const src = t.data as Float32Array;
  const out = new Uint16Array(src.length);
  const conv = dtype === 'bf16' ? float32ToBfloat16Bits : float32ToFloat16Bits;
  for (let i = 0; i < src.length; i++) out[i] = conv(src[i]);
  return { dtype: dtype === 'bf16' ? 'bfloat16' : 'float16', dims: [...t.dims], data: out };
}

function tensorBytes(t: Tensor): number {
  return tensorSize(t.dims) * (t.dtype === 'float32' ? 4 : t.dtype === 'float64' ? 8 : 2);
}

/** Shards in name order, each at most `max` bytes (a tensor larger than that gets a shard of its own). */
export function shardTensors(names: string[], bytes: (n: string) => number, max: number): string[][] {
  const shards: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const n of names) {
    const b = bytes(n);
    if (cur.length && size + b > max) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(n);
    size += b;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

// ---------------------------------------------------------------------------------------------------------------
// Preprocessor

/** io.image's normalize presets as mean/std. */
const NORMALIZATION: Record<string, { mean: readonly number[]; std: readonly number[] }> = {
  clip: { mean: CLIP_MEAN, std: CLIP_STD },
  imagenet: { mean: IMAGENET_MEAN, std: IMAGENET_STD },
  half: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  none: { mean: [0, 0, 0], std: [1, 1, 1] },
};

function preprocessorConfig(p: Record<string, unknown>, imageProcessorType: string, processorClass: string | undefined): Record<string, unknown> {
  const size = typeof p.size === 'number' ? p.size : 224;
  const preset = NORMALIZATION[String(p.normalize)] ?? NORMALIZATION.clip;
  const mean = Array.isArray(p.mean) ? p.mean : preset.mean;
  const std = Array.isArray(p.std) ? p.std : preset.std;
  const resample: Record<string, number> = { nearest: 0, bilinear: 2, bicubic: 3 };
  const crop = p.resize === 'shortest-then-crop';
  return {
    image_processor_type: imageProcessorType,
    ...(processorClass ? { processor_class: processorClass } : {}),
    do_resize: true,
    size: crop ? { shortest_edge: typeof p.shortest_edge === 'number' ? p.shortest_edge : size } : { height: size, width: size },
    resample: resample[String(p.resample)] ?? 3,
    // Blip/SiglipImageProcessor have no centre crop; CLIPImageProcessor says whether it crops.
    ...(crop || imageProcessorType === 'CLIPImageProcessor' ? { do_center_crop: crop } : {}),
    ...(crop ? { crop_size: { height: size, width: size } } : {}),
    do_rescale: true,
    rescale_factor: typeof p.rescale_factor === 'number' ? p.rescale_factor : 1 / 255,
    do_normalize: true,
    image_mean: mean,
    image_std: std,
    // SiglipImageProcessor leaves do_convert_rgb unset (None) in the checkpoints it writes.
    ...(imageProcessorType === 'SiglipImageProcessor' ? {} : { do_convert_rgb: true }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The export

function plainParams(params: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(params ?? {})) as Record<string, unknown>;
}

/** The architecture and plan for a graph, or an error listing what was tried. */
export function planHfExport(src: HfExportSource): { arch: HfArchitecture; plan: HfExportPlan } {
  const tried: string[] = [];
  for (const arch of exportOrder()) {
    const plan = arch.fromGraph!(src);
    if (plan) return { arch, plan };
    tried.push(arch.classes.join('/'));
  }
  throw new ExportError(
    `graph '${src.doc.name}' matches no Hugging Face architecture Composer exports (${tried.join(', ')}); ` +
      'an LLM export needs exactly one llm.decoder fed by its llm.embed_tokens',
  );
}

export async function exportHfFolder(doc: GraphDocument, opts: HfExportOptions): Promise<ExportResult> {
  const diagnostics = validateDocument(doc);
  if (hasErrors(diagnostics)) {
    const first = diagnostics.find((d) => d.severity === 'error')!;
    throw new ExportError(`the graph is not valid${first.nodeId ? ` (node '${first.nodeId}')` : ''}: ${first.message}`);
  }
  const dtype = opts.dtype ?? 'f32';
  const maxShard = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShard > 0)) throw new ExportError(`maxShardBytes must be positive, got ${maxShard}`);
  const dir = resolve(opts.outDir);
  prepareExportDir(dir);
  const executor = opts.executor ?? new Executor();
  const files: ExportedFile[] = [];
  const notes: string[] = [];
  const add = (f: ExportedFile) => {
    files.push(f);
    opts.onProgress?.({ file: f.path });
  };
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  try {
    const plan0 = new RunPlan(doc, executor.catalog, { baseDir: opts.baseDir, targets: doc.nodes.map((n) => n.id) });
    const tokenizers = new Map<string, TokenizerFiles>();
    const tokenizerFor = (param: string) => {
      let t = tokenizers.get(param);
      if (!t) tokenizers.set(param, (t = new TokenizerFiles(param, opts.baseDir, `tokenizer '${param}'`)));
      return t;
    };
    const src: HfExportSource = { doc, params: (id) => plainParams(plan0.params(id)), specialTokens: (t) => tokenizerFor(t).specialIds() };
    const { arch, plan } = planHfExport(src);
    const writeTokenizer = (tok: TokenizerFiles, prefix: string, chatTemplate: string | undefined) => {
      add(writeExportFile(dir, `${prefix}tokenizer.json`, tok.contents()));
      add(writeExportFile(dir, `${prefix}tokenizer_config.json`, json(tok.config(chatTemplate))));
      const stm = join(dirname(tok.path), 'special_tokens_map.json');
      if (tok.configPath && existsSync(stm)) add(writeExportFile(dir, `${prefix}special_tokens_map.json`, readFileSync(stm)));
    };
    notes.push(...plan.notes);
    const cls = Array.isArray(plan.config.architectures) ? String(plan.config.architectures[0]) : arch.id;

    // Weights, in the state-dict names; a tensor two nodes share (a tied word embedding) is written once.
    const tensors = new Map<string, Tensor>();
    const from = new Map<string, string>();
    const adapted: string[] = [];
    for (const part of plan.parts) {
      const node = doc.nodes.find((n) => n.id === part.node);
      if (!node) throw new ExportError(`${arch.id}: the plan names node '${part.node}', which the graph does not have`);
      const merge = node.adapters.length > 0 && opts.merge === true;
      if (node.adapters.length > 0 && !merge) adapted.push(node.id);
      const built = await nodeExportWeights(executor, doc, opts.baseDir, node.id, { merge });
      const weights = part.fuse ? part.fuse(built) : built;
      for (const [ours, t] of weights) {
        const hf = part.toHf(ours);
        if (hf === null) continue;
        const what = `node '${node.id}' weight '${ours}' → '${hf}'`;
        if (tensors.has(hf)) {
          if (from.get(hf) === `${node.id}:${ours}`) continue;
          const prev = tensors.get(hf)!;
          if (prev.dims.join(',') !== t.dims.join(',')) throw new ExportError(`${what}: tensor already written from ${from.get(hf)} with shape [${prev.dims.join(',')}], this one is [${t.dims.join(',')}]`);
          continue; // tied: save_pretrained keeps one copy
        }
        tensors.set(hf, castTensor(t, dtype, what));
        from.set(hf, `${node.id}:${ours}`);
      }
      if (merge) notes.push(`node '${node.id}': its LoRA is merged into the exported weights`);
    }
    for (const [name, t] of plan.extraTensors ?? []) {
      if (tensors.has(name)) throw new ExportError(`${arch.id}: tensor '${name}' is written twice`);
      tensors.set(name, castTensor(t, dtype, `tensor '${name}'`));
    }
    const covered = new Set(plan.parts.map((p) => p.node));
    for (const n of doc.nodes) {
      if (covered.has(n.id)) continue;
      const def = plan0.def(n.id);
      if (!def.build || n.type === 'llm.merge_image_text') continue;
      const frag = await executor.fragmentOf(doc, opts.baseDir, n.id);
      if (frag.weights.length) notes.push(`node '${n.id}' (${n.type}, ${frag.weights.length} weights) is not exported: ${UNEXPRESSED[n.type] ?? `${cls} has no place for it`}`);
    }

    // model.safetensors, or shards with an index.
    const names = [...tensors.keys()].sort();
    const shards = shardTensors(names, (n) => tensorBytes(tensors.get(n)!), maxShard);
    const meta = { format: 'pt' };
    if (shards.length <= 1) {
      add(writeExportFile(dir, 'model.safetensors', serializeSafetensors(new Map(names.map((n) => [n, tensors.get(n)!])), meta)));
    } else {
      const weightMap: Record<string, string> = {};
      const pad = (i: number) => String(i).padStart(5, '0');
      shards.forEach((shard, i) => {
        const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
        for (const n of shard) weightMap[n] = file;
        add(writeExportFile(dir, file, serializeSafetensors(new Map(shard.map((n) => [n, tensors.get(n)!])), meta)));
      });
      const total = names.reduce((s, n) => s + tensorBytes(tensors.get(n)!), 0);
      add(writeExportFile(dir, 'model.safetensors.index.json', json({ metadata: { total_size: total }, weight_map: weightMap })));
    }

    add(writeExportFile(dir, 'config.json', json({ ...plan.config, torch_dtype: TORCH_DTYPE[dtype] })));
    if (plan.generation) add(writeExportFile(dir, 'generation_config.json', json(plan.generation)));
    if (plan.tokenizerNode) {
      const param = src.params(plan.tokenizerNode).tokenizer;
      if (typeof param !== 'string') throw new ExportError(`node '${plan.tokenizerNode}': has no tokenizer param`);
      const tok = tokenizerFor(param).edited({ swap: plan.tokenIdSwap, appendEos: plan.tokenizerAppendsEos });
      writeTokenizer(tok, '', plan.chatTemplate);
    }
    for (const sub of plan.subTokenizers ?? []) {
      const param = src.params(sub.node).tokenizer;
      writeTokenizer(tokenizerFor(typeof param === 'string' ? param : 'builtin'), `${sub.dir}/`, undefined);
    }
    if (plan.image) {
      add(writeExportFile(dir, 'preprocessor_config.json', json(preprocessorConfig(src.params(plan.image.node), plan.image.imageProcessorType, plan.image.processorClass))));
      if (plan.image.processor) add(writeExportFile(dir, 'processor_config.json', json(plan.image.processor)));
    }
    if (adapted.length) {
      // Each adapted layer named as this folder's state dict names it, so PeftModel.from_pretrained(model, 'adapters/<node>') finds it.
      const partOf = new Map(plan.parts.map((p) => [p.node, p]));
      const peft = await exportPeftAdapters(doc, {
        baseDir: opts.baseDir,
        outDir: dir,
        executor,
        peftOptions: (node) => ({ moduleWeightName: (ours) => partOf.get(node)?.toHf(ours) ?? ours }),
      });
      for (const f of peft.files) add(f);
      notes.push(...peft.notes, `adapters of ${adapted.map((a) => `'${a}'`).join(', ')} are written beside the base in PEFT format (adapters/<node>/); --merge folds LoRA into the weights instead`);
    }
    add(writeExportFile(dir, 'README.md', modelCard(doc, cls, plan, { dtype, tensors: names.length, notes, merged: opts.merge === true, training: trainingRecord(opts.baseDir) })));
    writeManifest(dir, { kind: 'hf', graph: doc.name, entry: { config: 'config.json' }, files, notes });
    return { dir, entry: 'config.json', files, notes };
  } finally {
    if (!opts.executor) await executor.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// README.md

/** The newest checkpoint's record (recipe, dataset, hyper-parameters, losses) when the graph is a trained folder. */
function trainingRecord(baseDir: string): CheckpointMeta | undefined {
  let file: string;
  try {
    file = findCheckpoint(baseDir);
  } catch {
    return undefined; // not a trained folder
  }
  const raw = readSafetensorsHeader(file).metadata['composer.train'];
  if (raw === undefined) return undefined;
  const parsed = CheckpointMetaSchema.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new ExportError(`checkpoint '${file}': composer.train metadata: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`);
  return parsed.data;
}

function modelCard(
  doc: GraphDocument,
  cls: string,
  plan: HfExportPlan,
  o: { dtype: HfDtype; tensors: number; notes: string[]; merged: boolean; training?: CheckpointMeta },
): string {
  const frozen = doc.nodes.filter((n) => n.frozen).map((n) => `\`${n.id}\` (${n.type})`);
  const trained = doc.nodes.filter((n) => !n.frozen && n.weights?.sha256).map((n) => `\`${n.id}\` (${n.type})`);
  const adapters = doc.nodes.flatMap((n) => n.adapters.map((a) => `\`${n.id}\`: ${a.method ?? 'adapter'} \`${a.id}\``));
  const modelType = String(plan.config.model_type);
  const isLm = plan.generation !== undefined;
  const lines = [
    '---',
    'library_name: transformers',
    ...(isLm ? ['pipeline_tag: ' + (plan.image ? 'image-text-to-text' : 'text-generation')] : []),
    'tags: [vlm-composer]',
    '---',
    '',
    `# ${doc.name}`,
    '',
    `Exported by ${composerVersion().name} ${composerVersion().version} from the graph '${doc.name}' as \`${cls}\` (model_type \`${modelType}\`), ${o.tensors} tensors in ${o.dtype}.`,
    '',
    '## Load',
    '',
    '```python',
    `from transformers import ${plan.image ? 'AutoProcessor' : 'AutoTokenizer'}, ${cls}`,
    plan.image ? 'processor = AutoProcessor.from_pretrained("PATH")' : 'tokenizer = AutoTokenizer.from_pretrained("PATH")',
    `model = ${cls}.from_pretrained("PATH")`,
    ...(!o.merged && doc.nodes.some((n) => n.adapters.length > 0)
      ? ['from peft import PeftModel', ...doc.nodes.filter((n) => n.adapters.length > 0).map((n) => `model = PeftModel.from_pretrained(model, "PATH/adapters/${n.id}")`)]
      : []),
    '```',
    '',
  ];
  if (isLm) {
    lines.push('## Serve', '', 'With vLLM (an OpenAI-compatible server on port 8000):', '', '```sh', `vllm serve PATH --dtype ${o.dtype === 'f32' ? 'float32' : o.dtype === 'f16' ? 'float16' : 'bfloat16'}${plan.chatTemplate ? '' : ' --chat-template TEMPLATE.jinja'}`, '```', '');
  }
  lines.push('## Training', '');
  const t = o.training;
  if (t) {
    const h = t.hyper;
    const last = t.losses.slice(-Math.min(10, t.losses.length));
    const mean = last.reduce((a, b) => a + b, 0) / Math.max(1, last.length);
    lines.push(
      `- Recipe \`${t.recipe}\` on dataset \`${t.dataset}\`, ${t.step} of ${t.totalSteps} steps, batch ${h.batchSize}, ${h.optimizer} lr ${h.learningRate} (warmup ${h.warmupSteps}, weight decay ${h.weightDecay}, grad norm ${h.maxGradNorm}), seed ${t.seed}${t.adapter ? `, adapter ${t.adapter}` : ''}`,
      `- Trained weights: ${t.trainables.length} tensors`,
      ...(t.losses.length ? [`- Measured loss: first step ${t.losses[0].toFixed(4)}, mean of the last ${last.length} steps ${mean.toFixed(4)}`] : []),
    );
  }
  lines.push(`- Trained nodes (weights from a trained folder): ${trained.length ? trained.join(', ') : 'none — the weights are those the graph was built with (imported or seeded)'}`);
  lines.push(`- Frozen nodes: ${frozen.length ? frozen.join(', ') : 'none'}`);
  lines.push(`- Adapters: ${adapters.length ? adapters.join(', ') + (o.merged ? ' (merged into the weights)' : ' (in PEFT format under adapters/)') : 'none'}`);
  if (o.notes.length) lines.push('', '## Notes', '', ...o.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}
