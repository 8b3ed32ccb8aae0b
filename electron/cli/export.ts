// vlmc export GRAPH --format bundle|onnx|triton|peft|hf|train-job --out DIR [--external-data auto|always|never]
// [--dtype f32|f16|bf16] [--max-shard-bytes N] [--merge] [--json]
// train-job: --recipe NAME --dataset shapes|PATH [--dataset-size N] [--steps N] [--batch-size N] [--lr X] [--adapter lora] [--zero 2|3]

import { resolve } from 'node:path';
import { z } from 'zod';
import { EXPORT_FORMATS, HF_DTYPES, runExport } from '../export/index.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { loadGraph } from './graph-file.js';

export const exportUsage =
  'vlmc export GRAPH --format bundle|onnx|triton|peft|hf|train-job --out DIR [--external-data auto|always|never] [--dtype f32|f16|bf16] [--max-shard-bytes N] [--merge] [--json]' +
  '  (train-job: --recipe NAME --dataset shapes|PATH [--dataset-size N] [--steps N] [--batch-size N] [--lr X] [--adapter lora] [--zero 2|3])';

const TRAIN_JOB_FLAGS = ['recipe', 'dataset', 'dataset-size', 'steps', 'batch-size', 'lr', 'adapter', 'zero'] as const;

const flagsSchema = z
  .object({
    format: z.enum(EXPORT_FORMATS, { error: `--format must be one of ${EXPORT_FORMATS.join(', ')}` }),
    out: z.string({ error: 'give the output folder, e.g. --out dist/blip2' }).min(1),
    'external-data': z.enum(['auto', 'always', 'never']).default('auto'),
    merge: z.boolean().default(false),
    dtype: z.enum(HF_DTYPES, { error: `--dtype must be one of ${HF_DTYPES.join(', ')}` }).optional(),
    'max-shard-bytes': z.coerce.number({ error: '--max-shard-bytes must be a number of bytes' }).int().positive().optional(),
    recipe: z.string().min(1).optional(),
    dataset: z.string().min(1).optional(),
    'dataset-size': z.coerce.number({ error: '--dataset-size must be a whole number' }).int().positive().optional(),
    steps: z.coerce.number({ error: '--steps must be a whole number' }).int().positive().optional(),
    'batch-size': z.coerce.number({ error: '--batch-size must be a whole number' }).int().positive().optional(),
    lr: z.coerce.number({ error: '--lr must be a number' }).positive().optional(),
    adapter: z.literal('lora', { error: '--adapter takes lora (LLaMA-Factory trains LoRA adapters)' }).optional(),
    zero: z.coerce.number().pipe(z.union([z.literal(2), z.literal(3)], { error: '--zero must be 2 or 3 (the DeepSpeed ZeRO stage)' })).optional(),
    json: z.boolean().default(false),
  })
  .strict();

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

export async function exportCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ['json', 'merge']);
  const opts = validateFlags(flagsSchema, flags);
  if (positionals.length !== 1) throw new UsageError(`usage: ${exportUsage}`);
  const { doc, baseDir } = loadGraph(positionals[0]);
  if (opts.format !== 'hf' && opts.format !== 'train-job' && (opts.dtype || opts['max-shard-bytes'])) throw new UsageError('--dtype and --max-shard-bytes apply to --format hf and train-job only');
  const jobFlags = TRAIN_JOB_FLAGS.filter((f) => opts[f] !== undefined);
  if (opts.format !== 'train-job' && jobFlags.length) throw new UsageError(`${jobFlags.map((f) => `--${f}`).join(', ')} apply to --format train-job only`);
  if (opts.format === 'train-job' && (!opts.recipe || !opts.dataset)) throw new UsageError('--format train-job needs --recipe NAME and --dataset shapes|PATH');
  const result = await runExport(doc, opts.format, {
    baseDir,
    outDir: resolve(opts.out),
    externalData: opts['external-data'],
    merge: opts.merge,
    dtype: opts.dtype,
    maxShardBytes: opts['max-shard-bytes'],
    ...(opts.format === 'train-job'
      ? {
          trainJob: {
            recipe: opts.recipe!,
            dataset: opts.dataset === 'shapes' ? 'shapes' : resolve(opts.dataset!),
            datasetSize: opts['dataset-size'],
            steps: opts.steps,
            batchSize: opts['batch-size'],
            learningRate: opts.lr,
            adapter: opts.adapter,
            zero: opts.zero,
          },
        }
      : {}),
  });
  if (opts.json) {
    for (const f of result.files) out(JSON.stringify({ type: 'file', ...f }));
    out(JSON.stringify({ type: 'summary', format: opts.format, dir: result.dir, entry: result.entry, files: result.files.length, notes: result.notes }));
    return 0;
  }
  const width = Math.max(...result.files.map((f) => f.path.length));
  for (const f of result.files) out(`${f.path.padEnd(width)}  ${size(f.bytes).padStart(10)}  sha256 ${f.sha256.slice(0, 16)}…`);
  for (const n of result.notes) out(`note: ${n}`);
  const total = result.files.reduce((n, f) => n + f.bytes, 0);
  out(`exported '${doc.name}' as ${opts.format} to ${result.dir} (${result.files.length} files, ${size(total)}${opts.format === 'peft' ? '' : ', manifest.json'})`);
  if (opts.format === 'bundle') out(`run it with: vlmc run ${result.dir} --image IMAGE --prompt TEXT`);
  if (opts.format === 'train-job') out(`run it with LLaMA-Factory: cd ${result.dir} && llamafactory-cli train train.yaml (README.md has the multi-node commands)`);
  if (opts.format === 'hf') out(`load it with transformers' from_pretrained('${result.dir}'), or bring it back with: vlmc import ${result.dir}`);
  return 0;
}
