// vlmc train GRAPH --recipe NAME [--steps N] [--batch B] [--accumulate N] [--lr X] [--adapter METHOD[:key=value,...]]
//                  [--dataset shapes|PATH] [--teacher GRAPH] [--out DIR] [--resume DIR] [--eval-every N] [--no-prefix-cache] [--json]

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { adapterMethodSchema, parseGraphDocument } from '../engine/document.js';
import { RECIPE_NAMES } from '../engine/trainer/recipes.js';
import { type TrainerEvent, train } from '../engine/trainer/trainer.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { exportPeftAdapters } from '../export/peft.js';

const flagsSchema = z
  .object({
    recipe: z.string({ error: 'is required (one of ' + RECIPE_NAMES.join(', ') + ')' }),
    steps: z.coerce.number().int().positive().default(100),
    batch: z.coerce.number().int().positive().optional(),
    accumulate: z.coerce.number().int().positive().default(1),
    lr: z.coerce.number().positive().optional(),
    adapter: z.string().optional(),
    dataset: z.string().default('shapes'),
    teacher: z.string().optional(),
    'dataset-size': z.coerce.number().int().positive().default(256),
    out: z.string().optional(),
    resume: z.string().optional(),
    seed: z.coerce.number().int().default(0),
    'eval-every': z.coerce.number().int().nonnegative().default(0),
    'checkpoint-every': z.coerce.number().int().positive().optional(),
    optimizer: z.enum(['adamw', 'sgd']).default('adamw'),
    'no-prefix-cache': z.boolean().default(false),
    'fixed-batch': z.boolean().default(false),
    peft: z.boolean().default(false),
    merge: z.boolean().default(false),
    json: z.boolean().default(false),
  })
  .strict();

export const trainUsage =
  'vlmc train GRAPH --recipe NAME [--steps N] [--batch B] [--accumulate N] [--lr X] [--adapter lora|qlora|prefix|prompt|ptuning|ptuning-v2|adapter|ia3|lora-moe[:key=value,...]] ' +
  '[--dataset shapes|PATH] [--teacher GRAPH] [--out DIR [--peft] [--merge]] [--resume DIR] [--eval-every N] [--json]';

/** `lora:r=16,lora_alpha=32` → {method, config} (values parsed as JSON when they are numbers/booleans). */
export function parseAdapterFlag(text: string): { method: z.infer<typeof adapterMethodSchema>; config: Record<string, unknown> } {
  const [method, rest] = text.split(/:(.*)/s, 2);
  const m = adapterMethodSchema.safeParse(method);
  if (!m.success) throw new UsageError(`--adapter: unknown method '${method}' (one of ${adapterMethodSchema.options.join(', ')})`);
  const config: Record<string, unknown> = {};
  for (const part of (rest ?? '').split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`--adapter: '${part}' is not key=value`);
    const key = part.slice(0, eq);
    const raw = part.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    config[key] = value;
  }
  return { method: m.data, config };
}

/** A graph file, or a folder holding `graph.json` (an `--out` folder). */
function graphPath(arg: string): string {
  const p = resolve(arg);
  if (existsSync(p) && statSync(p).isDirectory()) return join(p, 'graph.json');
  return p;
}

function readGraph(file: string, what: string) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${what} '${file}': ${(e as Error).message}`);
  }
  return parseGraphDocument(text, file);
}

export async function trainCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ['json', 'no-prefix-cache', 'fixed-batch', 'peft', 'merge']);
  const o = validateFlags(flagsSchema, flags);
  if ((o.peft || o.merge) && !o.out) throw new UsageError('--peft and --merge write into the --out folder: give --out DIR');
  if (positionals.length !== 1) throw new UsageError(`usage: ${trainUsage}`);
  if (!(RECIPE_NAMES as readonly string[]).includes(o.recipe)) {
    throw new UsageError(`--recipe: unknown recipe '${o.recipe}' (one of ${RECIPE_NAMES.join(', ')})`);
  }
  const file = graphPath(positionals[0]);
  const graph = readGraph(file, 'graph');
  // nextgpt-align: the text-to-image graph whose text encoder the output projector learns to imitate.
  const teacherFile = o.teacher ? graphPath(o.teacher) : undefined;
  const teacher = teacherFile ? { graph: readGraph(teacherFile, '--teacher graph'), baseDir: dirname(teacherFile) } : undefined;
  const dataset = o.dataset === 'shapes' ? 'shapes' : resolve(o.dataset);
  const emit = (e: TrainerEvent) => {
    if (o.json) {
      out(JSON.stringify(e));
      return;
    }
    switch (e.type) {
      case 'started':
        out(`training ${e.trainable} parameters (${e.trainableTensors} tensors) in ${e.nodes.train.join(', ')}` +
          (e.nodes.prefix.length ? `; frozen prefix ${e.nodes.prefix.join(', ')} (cached per sample)` : ''));
        break;
      case 'step':
        out(`step ${e.step}/${e.totalSteps}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  |g| ${e.gradNorm.toFixed(3)}  ` +
          `${e.samplesPerSec.toFixed(1)} samples/s  eta ${Math.round(e.etaSeconds)}s${e.applied ? '' : '  (skipped: non-finite gradient)'}`);
        break;
      case 'eval':
        out(`eval @${e.step}: ${Object.entries(e.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join('  ')}`);
        break;
      case 'checkpoint':
        out(`checkpoint ${e.path}`);
        break;
      case 'done':
        out(`done at step ${e.step}${e.out ? `; trained graph in ${e.out}` : ''}`);
        break;
      default:
        out(`${e.type} at step ${e.step}`);
    }
  };
  await train({
    graph,
    baseDir: dirname(file),
    recipe: o.recipe,
    steps: o.steps,
    batchSize: o.batch,
    accumulate: o.accumulate,
    learningRate: o.lr,
    optimizer: o.optimizer,
    adapter: o.adapter ? parseAdapterFlag(o.adapter) : undefined,
    dataset,
    datasetSize: o['dataset-size'],
    teacher,
    seed: o.seed,
    evalEvery: o['eval-every'],
    checkpointEvery: o['checkpoint-every'],
    out: o.out ? resolve(o.out) : undefined,
    resume: o.resume ? resolve(o.resume) : undefined,
    prefixCache: !o['no-prefix-cache'],
    fixedBatch: o['fixed-batch'],
    onEvent: emit,
  });
  if (o.out && (o.peft || o.merge)) {
    // The trained folder's adapters in PEFT format (adapters/<node>/...), and with --merge the merged base weights.
    const outDir = resolve(o.out);
    const trained = parseGraphDocument(readFileSync(join(outDir, 'graph.json'), 'utf8'), join(outDir, 'graph.json'));
    const res = await exportPeftAdapters(trained, { baseDir: outDir, outDir, merge: o.merge });
    for (const f of res.files) out(o.json ? JSON.stringify({ type: 'file', ...f }) : `wrote ${f.path}`);
    for (const n of res.notes) out(o.json ? JSON.stringify({ type: 'note', message: n }) : `note: ${n}`);
  }
  return 0;
}
