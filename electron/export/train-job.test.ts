// `--format train-job`: the LLaVA-1.5 template becomes a folder LLaMA-Factory runs unchanged — the HF model, the
// dataset in its ShareGPT format with the images, dataset_info.json, a YAML whose keys are LLaMA-Factory's arguments
// and whose freezing follows the recipe (llava-stage1, llava-stage2 in full and with LoRA), a DeepSpeed config and the
// launch commands. A recipe LLaMA-Factory cannot express gets the transformers folder and a README saying why.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../engine/executor.js';
import { loadGraph } from '../cli/graph-file.js';
import { exportCommand } from '../cli/export.js';
import { UsageError } from '../cli/args.js';
import { importHfFolder } from '../formats/hf/import.js';
import { exportTrainJob } from './train-job.js';

/**
 * Every argument LLaMA-Factory's YAML takes that this export writes, with where LLaMA-Factory declares it
 * (hiyouga/LLaMA-Factory, src/llamafactory/hparams/): model_args.py ModelArguments, finetuning_args.py
 * FinetuningArguments (stage, finetuning_type, freeze_*; LoraArguments lora_*; plot_loss), data_args.py DataArguments,
 * and transformers' Seq2SeqTrainingArguments, which LLaMA-Factory's parser takes as training_args.
 */
const LLAMA_FACTORY_KEYS = new Set([
  // model_args.py
  'model_name_or_path', 'trust_remote_code',
  // finetuning_args.py
  'stage', 'finetuning_type', 'lora_rank', 'lora_alpha', 'lora_target', 'freeze_vision_tower', 'freeze_multi_modal_projector', 'freeze_language_model', 'plot_loss',
  // data_args.py
  'dataset', 'dataset_dir', 'template', 'cutoff_len', 'overwrite_cache', 'preprocessing_num_workers',
  // transformers TrainingArguments
  'do_train', 'deepspeed', 'output_dir', 'logging_steps', 'save_steps', 'overwrite_output_dir', 'per_device_train_batch_size', 'gradient_accumulation_steps',
  'learning_rate', 'max_steps', 'lr_scheduler_type', 'warmup_ratio', 'weight_decay', 'max_grad_norm', 'bf16', 'seed', 'ddp_timeout',
]);

const graphs = join(import.meta.dirname, '..', '..', 'graphs');
const tmp = mkdtempSync(join(tmpdir(), 'vlmc-train-job-'));
const executor = new Executor();
afterAll(async () => {
  await executor.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** train.yaml as key → value (the file is flat `key: value` lines under `### section` titles). */
function readYaml(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const m = /^([a-z_0-9]+): (.+)$/.exec(line);
    expect(m, `train.yaml line '${line}'`).not.toBeNull();
    out[m![1]] = m![2];
  }
  return out;
}

const json = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as unknown;
type Row = { messages: Array<{ role: string; content: string }>; images?: string[] };

describe('vlmc export --format train-job (LLaMA-Factory)', () => {
  const { doc, baseDir } = loadGraph(join(graphs, 'llava-1.5.graph.json'));

  it('llava-stage1: model, ShareGPT dataset with images, dataset_info.json, YAML freezing all but the projector, ZeRO-2, README', async () => {
    const dir = join(tmp, 'stage1');
    const res = await exportTrainJob(doc, { baseDir, outDir: dir, recipe: 'llava-stage1', dataset: 'shapes', datasetSize: 6, steps: 200, executor });
    expect(res.entry).toBe('train.yaml');
    expect((json(join(dir, 'model', 'config.json')) as { architectures: string[] }).architectures).toEqual(['LlavaForConditionalGeneration']);
    const rows = json(join(dir, 'data', 'composer_shapes.json')) as Row[];
    expect(rows).toHaveLength(6);
    for (const r of rows) {
      expect(r.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
      expect(r.messages[0].content.startsWith('<image>')).toBe(true);
      expect(r.messages[1].content).toMatch(/circle|square|triangle/);
      expect(r.images).toHaveLength(1);
      const meta = await sharp(join(dir, 'data', r.images![0])).metadata();
      expect(meta.format).toBe('png');
    }
    expect(json(join(dir, 'data', 'dataset_info.json'))).toEqual({
      composer_shapes: {
        file_name: 'composer_shapes.json',
        formatting: 'sharegpt',
        columns: { messages: 'messages', images: 'images' },
        tags: { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant' },
      },
    });
    const y = readYaml(join(dir, 'train.yaml'));
    for (const k of Object.keys(y)) expect(LLAMA_FACTORY_KEYS.has(k), `'${k}' is not a LLaMA-Factory argument`).toBe(true);
    expect(y).toMatchObject({
      model_name_or_path: 'model',
      stage: 'sft',
      finetuning_type: 'full',
      freeze_vision_tower: 'true',
      freeze_multi_modal_projector: 'false',
      freeze_language_model: 'true',
      dataset: 'composer_shapes',
      dataset_dir: 'data',
      template: 'llava',
      learning_rate: '0.001',
      max_steps: '200',
      deepspeed: 'ds_z2_config.json',
    });
    const ds = json(join(dir, 'ds_z2_config.json')) as { zero_optimization: { stage: number }; train_micro_batch_size_per_gpu: string };
    expect(ds.zero_optimization.stage).toBe(2);
    expect(ds.train_micro_batch_size_per_gpu).toBe('auto');
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(readme).toContain('llamafactory-cli train train.yaml');
    expect(readme).toContain('torchrun --nproc_per_node 8');
    // The model folder is the graph: it re-imports.
    expect(importHfFolder(join(dir, 'model')).summary.class).toBe('LlavaForConditionalGeneration');
  });

  it('llava-stage2 trains projector and LLM in full (ZeRO-3), or a LoRA on the LLM with the projector trained (ZeRO-2)', async () => {
    const full = join(tmp, 'stage2-full');
    await exportTrainJob(doc, { baseDir, outDir: full, recipe: 'llava-stage2', dataset: 'shapes', datasetSize: 4, executor });
    expect(readYaml(join(full, 'train.yaml'))).toMatchObject({ finetuning_type: 'full', freeze_vision_tower: 'true', freeze_multi_modal_projector: 'false', freeze_language_model: 'false', deepspeed: 'ds_z3_config.json', learning_rate: '0.00002' });
    expect((json(join(full, 'ds_z3_config.json')) as { zero_optimization: { stage: number } }).zero_optimization.stage).toBe(3);

    const lora = join(tmp, 'stage2-lora');
    const res = await exportTrainJob(doc, { baseDir, outDir: lora, recipe: 'llava-stage2', dataset: 'shapes', datasetSize: 4, adapter: 'lora', executor });
    const y = readYaml(join(lora, 'train.yaml'));
    expect(y).toMatchObject({ finetuning_type: 'lora', lora_rank: '8', lora_alpha: '8', lora_target: 'q_proj,v_proj', freeze_vision_tower: 'true', freeze_multi_modal_projector: 'false', freeze_language_model: 'false', deepspeed: 'ds_z2_config.json', learning_rate: '0.0002' });
    for (const k of Object.keys(y)) expect(LLAMA_FACTORY_KEYS.has(k), `'${k}' is not a LLaMA-Factory argument`).toBe(true);
    expect(res.notes.join('\n')).not.toMatch(/LoRA is merged/);
  });

  it('a LLaVA conversation file keeps its turns and copies its images; a text-only sample stays text-only', async () => {
    const data = join(tmp, 'convs');
    const img = join(tmp, 'cat.png');
    await sharp({ create: { width: 40, height: 30, channels: 3, background: '#3a7' } }).png().toFile(img);
    const file = join(tmp, 'convs.json');
    writeFileSync(
      file,
      JSON.stringify([
        { id: 'a', image: 'cat.png', conversations: [{ from: 'human', value: '<image>\nWhat colour is it?' }, { from: 'gpt', value: 'Green.' }, { from: 'human', value: 'Is it large?' }, { from: 'gpt', value: 'Yes.' }] },
        { id: 'b', conversations: [{ from: 'human', value: 'Say hi.' }, { from: 'gpt', value: 'Hi.' }] },
      ]),
    );
    await exportTrainJob(doc, { baseDir, outDir: data, recipe: 'llava-stage2', dataset: file, executor });
    const rows = json(join(data, 'data', 'composer_convs.json')) as Row[];
    const a = rows.find((r) => r.images)!;
    expect(a.messages).toEqual([
      { role: 'user', content: '<image>What colour is it?' },
      { role: 'assistant', content: 'Green.' },
      { role: 'user', content: 'Is it large?' },
      { role: 'assistant', content: 'Yes.' },
    ]);
    expect(readFileSync(join(data, 'data', a.images![0]))).toEqual(readFileSync(img));
    const b = rows.find((r) => !r.images)!;
    expect(b.messages[0]).toEqual({ role: 'user', content: 'Say hi.' });
  });

  it("a Q-Former recipe LLaMA-Factory cannot express: the transformers folder and a README that says why, no YAML", async () => {
    const blip = loadGraph(join(graphs, 'blip2.graph.json'));
    const dir = join(tmp, 'blip2');
    const res = await exportTrainJob(blip.doc, { baseDir: blip.baseDir, outDir: dir, recipe: 'blip2-stage1', dataset: 'shapes', datasetSize: 4, executor });
    expect(existsSync(join(dir, 'train.yaml'))).toBe(false);
    expect((json(join(dir, 'model', 'config.json')) as { model_type: string }).model_type).toBe('blip-2');
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toMatch(/LLaMA-Factory cannot run this job: recipe 'blip2-stage1'/);
    expect(res.notes.join('\n')).toMatch(/no LLaMA-Factory YAML/);
    // BLIP-2's LM recipes fail on the model class instead.
    const stage2 = await exportTrainJob(blip.doc, { baseDir: blip.baseDir, outDir: join(tmp, 'blip2-s2'), recipe: 'blip2-stage2', dataset: 'shapes', datasetSize: 4, executor });
    expect(stage2.notes.join('\n')).toMatch(/recipe 'blip2-stage2'|does not train Blip2ForConditionalGeneration/);
  });

  it('the CLI asks for --recipe and --dataset, and refuses job flags on other formats', async () => {
    const graph = join(graphs, 'llava-1.5.graph.json');
    await expect(exportCommand([graph, '--format', 'train-job', '--out', join(tmp, 'x')], () => {})).rejects.toThrow(UsageError);
    await expect(exportCommand([graph, '--format', 'hf', '--out', join(tmp, 'y'), '--recipe', 'lm'], () => {})).rejects.toThrow(/--recipe apply to --format train-job only/);
    const lines: string[] = [];
    expect(await exportCommand([graph, '--format', 'train-job', '--out', join(tmp, 'cli'), '--recipe', 'llava-stage1', '--dataset', 'shapes', '--dataset-size', '3', '--zero', '3'], (l) => lines.push(l))).toBe(0);
    expect(lines.join('\n')).toMatch(/llamafactory-cli train train\.yaml/);
    expect(readYaml(join(tmp, 'cli', 'train.yaml')).deepspeed).toBe('ds_z3_config.json');
  });
});
