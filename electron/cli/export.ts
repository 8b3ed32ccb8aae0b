// vlmc export GRAPH --format bundle|onnx|triton|peft|hf --out DIR [--external-data auto|always|never] [--dtype f32|f16|bf16]
// [--max-shard-bytes N] [--merge] [--json]

import { resolve } from 'node:path';
import { z } from 'zod';
import { EXPORT_FORMATS, HF_DTYPES, runExport } from '../export/index.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { loadGraph } from './graph-file.js';

export const exportUsage =
  'vlmc export GRAPH --format bundle|onnx|triton|peft|hf --out DIR [--external-data auto|always|never] [--dtype f32|f16|bf16] [--max-shard-bytes N] [--merge] [--json]';

const flagsSchema = z
  .object({
    format: z.enum(EXPORT_FORMATS, { error: `--format must be one of ${EXPORT_FORMATS.join(', ')}` }),
    out: z.string({ error: 'give the output folder, e.g. --out dist/blip2' }).min(1),
    'external-data': z.enum(['auto', 'always', 'never']).default('auto'),
    merge: z.boolean().default(false),
    dtype: z.enum(HF_DTYPES, { error: `--dtype must be one of ${HF_DTYPES.join(', ')}` }).optional(),
    'max-shard-bytes': z.coerce.number({ error: '--max-shard-bytes must be a number of bytes' }).int().positive().optional(),
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
  if (opts.format !== 'hf' && (opts.dtype || opts['max-shard-bytes'])) throw new UsageError('--dtype and --max-shard-bytes apply to --format hf only');
  const result = await runExport(doc, opts.format, {
    baseDir,
    outDir: resolve(opts.out),
    externalData: opts['external-data'],
    merge: opts.merge,
    dtype: opts.dtype,
    maxShardBytes: opts['max-shard-bytes'],
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
  if (opts.format === 'hf') out(`load it with transformers' from_pretrained('${result.dir}'), or bring it back with: vlmc import ${result.dir}`);
  return 0;
}
