// Train-job export (`vlmc export GRAPH --format train-job --recipe NAME --dataset … --out DIR`): what LLaMA-Factory
// runs unchanged on a GPU cluster — the graph as a Hugging Face folder (model/), the dataset converted to the
// ShareGPT-style JSON LLaMA-Factory reads with its images (data/ + dataset_info.json), the recipe as a training YAML
// (stage, which parts freeze, LoRA rank / alpha / targets, learning rate, schedule, batch, steps), a DeepSpeed ZeRO
// config and a README with the launch commands. Recipes LLaMA-Factory cannot express (Q-Former ITC/ITM/ITG,
// contrastive towers, diffusion) get the model folder and a README that says so and points to transformers instead.
// The YAML keys are LLaMA-Factory's documented arguments (train-job.test.ts checks them against the list there).

import { readFileSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import type { GraphDocument } from '../engine/document.js';
import { Executor } from '../engine/executor.js';
import { IMAGE_PLACEHOLDER, type Sample, type ShapeSample, loadDataset, shapeSamplePng } from '../engine/datasets/index.js';
import { loadSplits, sampleTexts } from '../engine/trainer/batches.js';
import { type Recipe, recipeByName } from '../engine/trainer/recipes.js';
import { prepareDocument } from '../engine/trainer/trainer.js';
import { loraConfigSchema } from '../nodes/adapters/lora.js';
import type { ExportProgress, ExportResult } from './bundle.js';
import { type HfDtype, exportHfFolder } from './hf.js';
import { type ExportedFile, ExportError, prepareExportDir, writeExportFile, writeManifest } from './manifest.js';

export interface TrainJobOptions {
  baseDir: string;
  outDir: string;
  recipe: string;
  /** 'shapes' (the built-in procedural set) or a dataset file (JSONL / CSV / COCO / LLaVA JSON). */
  dataset: string;
  /** Samples of the built-in dataset to write (a file dataset is written whole). */
  datasetSize?: number;
  steps?: number;
  batchSize?: number;
  learningRate?: number;
  /** Train a LoRA on the language model instead of its full weights (a LoRA already on the decoder is used as is). */
  adapter?: 'lora';
  /** DeepSpeed ZeRO stage; default 3 for full fine-tuning, 2 with LoRA or a frozen language model. */
  zero?: 2 | 3;
  dtype?: HfDtype;
  seed?: number;
  executor?: Executor;
  onProgress?: (p: ExportProgress) => void;
}

/** Recipes LLaMA-Factory's supervised stages express: the LM objective on captions, questions or conversations. */
const SFT_RECIPES = new Set(['lm', 'captioning', 'vqa', 'instruction', 'llava-stage1', 'llava-stage2']);
/** Model classes LLaMA-Factory trains (a LLaVA-1.5 or a causal LM); its template for each. */
function templateFor(cls: string): string | undefined {
  if (cls === 'LlavaForConditionalGeneration') return 'llava';
  if (cls.endsWith('ForCausalLM') || cls === 'GPT2LMHeadModel') return 'default';
  return undefined;
}

interface Freezing {
  vision: boolean;
  projector: boolean;
  language: boolean;
}

/** Which of LLaVA's three parts the recipe freezes, read from the graph the trainer would train. */
function freezingOf(doc: GraphDocument): Freezing {
  const frozen = (types: (t: string) => boolean) => doc.nodes.filter((n) => types(n.type)).every((n) => n.frozen);
  return {
    vision: frozen((t) => t.startsWith('encoder.')),
    projector: frozen((t) => t.startsWith('projector.')),
    language: frozen((t) => t === 'llm.decoder' || t === 'llm.embed_tokens'),
  };
}

interface LoraSettings {
  rank: number;
  alpha: number;
  target: string;
}

/** The decoder's LoRA as LLaMA-Factory's lora_rank / lora_alpha / lora_target ('all' = every linear layer). */
function loraOf(doc: GraphDocument): LoraSettings | undefined {
  const decoder = doc.nodes.find((n) => n.type === 'llm.decoder');
  const lora = decoder?.adapters.find((a) => a.method === 'lora');
  if (!decoder || !lora) return undefined;
  const c = loraConfigSchema.parse(lora.config);
  if (c.use_rslora) throw new ExportError(`node '${decoder.id}' adapter '${lora.id}': rsLoRA is LLaMA-Factory's use_rslora, which this job does not write; remove it or train without it`);
  const flavour = String(decoder.params.flavour ?? 'llama');
  const target =
    c.target_modules === 'all-linear'
      ? 'all'
      : Array.isArray(c.target_modules)
        ? c.target_modules.join(',')
        : c.target_modules === undefined
          ? flavour === 'gpt2'
            ? 'c_attn'
            : 'q_proj,v_proj'
          : undefined;
  if (target === undefined) throw new ExportError(`node '${decoder.id}' adapter '${lora.id}': target_modules ${JSON.stringify(c.target_modules)} is a regex; LLaMA-Factory's lora_target takes module names or 'all'`);
  return { rank: c.r, alpha: c.lora_alpha, target };
}

// ---------------------------------------------------------------------------------------------------------------
// The dataset

interface Message {
  role: 'user' | 'assistant';
  content: string;
}

/** The graph's own prompt text (the io.text node feeding the language model), used where a sample has none. */
function graphPrompt(doc: GraphDocument): string {
  const text = doc.nodes.find((n) => n.type === 'io.text');
  return typeof text?.params.text === 'string' ? text.params.text : '';
}

function messagesOf(sample: Sample, recipe: Recipe, prompt: string, withImage: boolean): Message[] {
  const t = sampleTexts(sample, recipe.task);
  if (t.caption === undefined) throw new ExportError(`sample '${sample.id}': has no target text for the '${recipe.name}' recipe`);
  const first = (t.user ?? prompt).trim();
  const messages: Message[] = [
    { role: 'user', content: withImage ? `${IMAGE_PLACEHOLDER}${first}` : first },
    { role: 'assistant', content: t.caption },
  ];
  for (const turn of t.turns) messages.push({ role: 'user', content: turn.prompt }, { role: 'assistant', content: turn.answer });
  return messages;
}

const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '');

// ---------------------------------------------------------------------------------------------------------------
// YAML, DeepSpeed, README

type YamlValue = string | number | boolean;

/** LLaMA-Factory's YAML: `key: value` lines in titled sections (strings quoted only when YAML would misread them). */
function yaml(sections: Array<[string, Array<[string, YamlValue]>]>): string {
  const scalar = (v: YamlValue) => (typeof v !== 'string' ? String(v) : /^[A-Za-z0-9_./,-]+$/.test(v) && !/^(true|false|null|yes|no|[-0-9.e]+)$/i.test(v) ? v : JSON.stringify(v));
  return `${sections.map(([title, entries]) => [`### ${title}`, ...entries.map(([k, v]) => `${k}: ${scalar(v)}`)].join('\n')).join('\n\n')}\n`;
}

function deepspeedConfig(stage: 2 | 3): Record<string, unknown> {
  const zero =
    stage === 2
      ? { stage: 2, allgather_partitions: true, allgather_bucket_size: 5e8, overlap_comm: false, reduce_scatter: true, reduce_bucket_size: 5e8, contiguous_gradients: true, round_robin_gradients: true }
      : {
          stage: 3,
          overlap_comm: false,
          contiguous_gradients: true,
          sub_group_size: 1e9,
          reduce_bucket_size: 'auto',
          stage3_prefetch_bucket_size: 'auto',
          stage3_param_persistence_threshold: 'auto',
          stage3_max_live_parameters: 1e9,
          stage3_max_reuse_distance: 1e9,
          stage3_gather_16bit_weights_on_model_save: true,
        };
  // "auto": the HF Trainer fills these from the YAML (batch, accumulation, clipping, precision).
  return {
    train_batch_size: 'auto',
    train_micro_batch_size_per_gpu: 'auto',
    gradient_accumulation_steps: 'auto',
    gradient_clipping: 'auto',
    zero_allow_untested_optimizer: true,
    bf16: { enabled: 'auto' },
    fp16: { enabled: 'auto', loss_scale: 0, loss_scale_window: 1000, initial_scale_power: 16, hysteresis: 2, min_loss_scale: 1 },
    zero_optimization: zero,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The export

export async function exportTrainJob(doc: GraphDocument, opts: TrainJobOptions): Promise<ExportResult> {
  const recipe = recipeByName(opts.recipe);
  const dir = resolve(opts.outDir);
  prepareExportDir(dir);
  const files: ExportedFile[] = [];
  const notes: string[] = [];
  const add = (f: ExportedFile) => {
    files.push(f);
    opts.onProgress?.({ file: f.path });
  };
  const executor = opts.executor ?? new Executor();
  try {
    const adapter = opts.adapter && !doc.nodes.some((n) => n.type === 'llm.decoder' && n.adapters.some((a) => a.method === 'lora')) ? { method: 'lora' as const, config: {} } : undefined;
    const trained = prepareDocument(doc, recipe, executor.catalog, adapter);

    // model/: the starting point, trained adapters folded in (LLaMA-Factory starts from a plain checkpoint).
    const model = await exportHfFolder(doc, { baseDir: opts.baseDir, outDir: join(dir, 'model'), executor, merge: true, dtype: opts.dtype ?? 'bf16' });
    for (const f of model.files) add({ ...f, path: `model/${f.path}` });
    notes.push(...model.notes.map((n) => `model: ${n}`));
    const config = JSON.parse(readFileSync(join(dir, 'model', 'config.json'), 'utf8')) as { architectures?: string[] };
    const cls = config.architectures?.[0] ?? '';
    const template = templateFor(cls);

    const why = !SFT_RECIPES.has(recipe.name)
      ? `recipe '${recipe.name}' (${recipe.summary}) has no LLaMA-Factory stage: LLaMA-Factory trains language-model objectives (pt / sft / preference), not ${recipe.objective === 'lm' ? 'this model' : `the '${recipe.objective}' objective`}`
      : template === undefined
        ? `LLaMA-Factory does not train ${cls} (it takes LLaVA-style models and causal LMs)`
        : undefined;
    if (why) {
      add(writeExportFile(dir, 'README.md', unsupportedReadme(doc, recipe, cls, why)));
      notes.push(`${why}; the job holds the transformers folder (model/) and a README, no LLaMA-Factory YAML`);
      writeManifest(dir, { kind: 'train-job', graph: doc.name, entry: { config: 'model/config.json' }, files, notes });
      return { dir, entry: 'model/config.json', files, notes };
    }

    // data/: the samples as LLaMA-Factory reads them, images beside.
    const withImage = cls === 'LlavaForConditionalGeneration';
    // A file is written whole (LLaMA-Factory splits off its own val_size); the built-in set is its training split.
    const samples = opts.dataset === 'shapes' ? loadSplits('shapes', { size: opts.datasetSize, seed: opts.seed ?? 0 }).train : loadDataset(opts.dataset).samples;
    const name = `composer_${safeName(opts.dataset === 'shapes' ? 'shapes' : basename(opts.dataset, extname(opts.dataset)))}`;
    const prompt = graphPrompt(doc);
    const pretrain = recipe.name === 'lm' && !withImage;
    const rows: unknown[] = [];
    for (const [i, sample] of samples.entries()) {
      if (pretrain) {
        const t = sampleTexts(sample, recipe.task);
        rows.push({ text: [t.user, t.caption].filter(Boolean).join(' ') });
        continue;
      }
      // A text-only sample of a LLaVA dataset stays text-only (no <image>, no images column entry).
      const hasImage = withImage && (sample.imagePath !== undefined || sample.image !== undefined);
      const row: Record<string, unknown> = { messages: messagesOf(sample, recipe, prompt, hasImage) };
      if (hasImage) {
        const file = `images/${String(i).padStart(6, '0')}-${safeName(sample.imagePath ? basename(sample.imagePath) : `${sample.id}.png`)}`;
        add(writeExportFile(dir, `data/${file}`, sample.imagePath ? readFileSync(sample.imagePath) : await shapeSamplePng(sample as ShapeSample)));
        row.images = [file];
      }
      rows.push(row);
    }
    add(writeExportFile(dir, `data/${name}.json`, `${JSON.stringify(rows, null, 2)}\n`));
    const info = pretrain
      ? { [name]: { file_name: `${name}.json`, columns: { prompt: 'text' } } }
      : {
          [name]: {
            file_name: `${name}.json`,
            formatting: 'sharegpt',
            columns: { messages: 'messages', ...(withImage ? { images: 'images' } : {}) },
            tags: { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant' },
          },
        };
    add(writeExportFile(dir, 'data/dataset_info.json', `${JSON.stringify(info, null, 2)}\n`));

    // train.yaml + DeepSpeed.
    const lora = loraOf(trained);
    const freezing = freezingOf(trained);
    const hyper = { ...recipe.hyper, ...(lora ? recipe.adapterHyper : {}) };
    const zero = opts.zero ?? (lora || freezing.language ? 2 : 3);
    const dsFile = `ds_z${zero}_config.json`;
    add(writeExportFile(dir, dsFile, `${JSON.stringify(deepspeedConfig(zero), null, 2)}\n`));
    const steps = opts.steps ?? 1000;
    const method: Array<[string, YamlValue]> = [
      ['stage', pretrain ? 'pt' : 'sft'],
      ['do_train', true],
      ['finetuning_type', lora ? 'lora' : 'full'],
      ...(lora ? ([['lora_rank', lora.rank], ['lora_alpha', lora.alpha], ['lora_target', lora.target]] as Array<[string, YamlValue]>) : []),
      ...(withImage
        ? ([
            ['freeze_vision_tower', freezing.vision],
            ['freeze_multi_modal_projector', freezing.projector],
            // LLaMA-Factory keeps LoRA off frozen parts (its forbidden modules): with LoRA the language model is
            // not frozen there, the adapter itself keeps the base weights fixed.
            ['freeze_language_model', lora ? false : freezing.language],
          ] as Array<[string, YamlValue]>)
        : []),
      ['deepspeed', dsFile],
    ];
    if (lora && !freezing.language) notes.push('the recipe would train the whole language model; with LoRA only the adapter trains (finetuning_type lora)');
    add(
      writeExportFile(
        dir,
        'train.yaml',
        yaml([
          ['model', [['model_name_or_path', 'model'], ['trust_remote_code', false]]],
          ['method', method],
          ['dataset', [['dataset', name], ['dataset_dir', 'data'], ['template', template!], ['cutoff_len', 2048], ['overwrite_cache', true], ['preprocessing_num_workers', 8]]],
          ['output', [['output_dir', `saves/${safeName(doc.name)}/${recipe.name}`], ['logging_steps', 10], ['save_steps', Math.max(1, Math.min(500, steps))], ['plot_loss', true], ['overwrite_output_dir', true]]],
          [
            'train',
            [
              ['per_device_train_batch_size', opts.batchSize ?? hyper.batchSize],
              ['gradient_accumulation_steps', 1],
              ['learning_rate', opts.learningRate ?? hyper.learningRate],
              ['max_steps', steps],
              ['lr_scheduler_type', 'cosine'],
              ['warmup_ratio', hyper.warmupRatio],
              ['weight_decay', hyper.weightDecay],
              ['max_grad_norm', hyper.maxGradNorm],
              ['bf16', true],
              ['seed', opts.seed ?? 0],
              ['ddp_timeout', 180000000],
            ],
          ],
        ]),
      ),
    );
    if (template === 'default') notes.push("template 'default' is LLaMA-Factory's plain format; pick the chat template your language model was tuned with (llama3, qwen, vicuna, …) in train.yaml");
    add(writeExportFile(dir, 'README.md', jobReadme(doc, recipe, cls, { name, samples: rows.length, zero, lora, freezing, withImage, steps })));
    writeManifest(dir, { kind: 'train-job', graph: doc.name, entry: { config: 'train.yaml' }, files, notes });
    return { dir, entry: 'train.yaml', files, notes };
  } finally {
    if (!opts.executor) await executor.dispose();
  }
}

function jobReadme(
  doc: GraphDocument,
  recipe: Recipe,
  cls: string,
  o: { name: string; samples: number; zero: 2 | 3; lora?: LoraSettings; freezing: Freezing; withImage: boolean; steps: number },
): string {
  const parts = o.withImage
    ? `vision tower ${o.freezing.vision ? 'frozen' : 'trains'}, projector ${o.freezing.projector ? 'frozen' : 'trains'}, language model ${o.lora ? `LoRA r ${o.lora.rank} / alpha ${o.lora.alpha} on ${o.lora.target}` : o.freezing.language ? 'frozen' : 'trains'}`
    : o.lora
      ? `LoRA r ${o.lora.rank} / alpha ${o.lora.alpha} on ${o.lora.target}`
      : 'all weights train';
  return `${[
    `# Training job: ${doc.name} — ${recipe.name}`,
    '',
    `Written by Composer from the graph '${doc.name}'. ${recipe.summary}`,
    '',
    `- \`model/\`: the graph as a \`${cls}\` folder (transformers' \`from_pretrained\` layout)`,
    `- \`data/${o.name}.json\`: ${o.samples} samples in LLaMA-Factory's ShareGPT format${o.withImage ? ', images in `data/images/`' : ''}; \`data/dataset_info.json\` registers it as \`${o.name}\``,
    `- \`train.yaml\`: ${parts}; ${o.steps} steps`,
    `- \`ds_z${o.zero}_config.json\`: DeepSpeed ZeRO stage ${o.zero}`,
    '',
    '## Run',
    '',
    'With [LLaMA-Factory](https://github.com/hiyouga/LLaMA-Factory) installed (`pip install -e ".[torch,metrics,deepspeed]"`), from this folder:',
    '',
    '```sh',
    'llamafactory-cli train train.yaml                                  # one node, every visible GPU',
    'FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=0 MASTER_ADDR=HOST MASTER_PORT=29500 llamafactory-cli train train.yaml   # rank 0 of two nodes',
    '```',
    '',
    'or with torchrun directly (8 GPUs):',
    '',
    '```sh',
    'torchrun --nproc_per_node 8 -m llamafactory.launcher train.yaml',
    '```',
    '',
    `The trained weights land in \`saves/\`; bring them back with \`vlmc import saves/…\` (a full fine-tune) or load the LoRA with PEFT.`,
    '',
  ].join('\n')}`;
}

function unsupportedReadme(doc: GraphDocument, recipe: Recipe, cls: string, why: string): string {
  return `${[
    `# Training job: ${doc.name} — ${recipe.name}`,
    '',
    `LLaMA-Factory cannot run this job: ${why}.`,
    '',
    `\`model/\` holds the graph as a \`${cls}\` folder that transformers loads with \`from_pretrained\`; train it there`,
    `(for example with the transformers \`Trainer\` and accelerate / DeepSpeed), or in Composer with \`vlmc train --recipe ${recipe.name}\`.`,
    '',
  ].join('\n')}`;
}
