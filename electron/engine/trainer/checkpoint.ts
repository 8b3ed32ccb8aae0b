// Checkpoints: one safetensors file per save, written atomically. Tensors are the trainables (named `node/weight`,
// the node id and the initializer name inside its fragment; trainer heads such as `itc.logit_scale` keep their
// own name) and their optimiser state (`node/weight.exp_avg`, ...). The `composer.train` metadata entry is JSON:
// step, RNG and sampler state, recipe and hyper-parameters — everything a resumed run needs to continue the same
// loss curve.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Tensor } from '../../onnx/ir.js';
import { readSafetensors, writeSafetensors } from '../../onnx/safetensors.js';
import { RngStateSchema } from '../rng.js';
import { SamplerStateSchema } from '../datasets/sampler.js';
import { TrainError } from './plan.js';

export const CHECKPOINT_FORMAT = 'composer.checkpoint';
const META_KEY = 'composer.train';

export const CheckpointMetaSchema = z.strictObject({
  format: z.literal(CHECKPOINT_FORMAT),
  version: z.literal(1),
  step: z.number().int().nonnegative(),
  totalSteps: z.number().int().positive(),
  recipe: z.string(),
  graphName: z.string(),
  dataset: z.string(),
  seed: z.number().int(),
  hyper: z.strictObject({
    learningRate: z.number(),
    warmupSteps: z.number().int().nonnegative(),
    weightDecay: z.number(),
    maxGradNorm: z.number(),
    batchSize: z.number().int().positive(),
    optimizer: z.enum(['adamw', 'sgd']),
  }),
  adapter: z.string().nullable(),
  rng: RngStateSchema,
  sampler: SamplerStateSchema,
  trainables: z.array(z.string()),
  /** Loss of every step so far (the chart continues after a resume). */
  losses: z.array(z.number()),
  elapsedMs: z.number().nonnegative(),
});
export type CheckpointMeta = z.infer<typeof CheckpointMetaSchema>;

export interface Checkpoint {
  meta: CheckpointMeta;
  params: Map<string, Tensor>;
  state: Map<string, Tensor>;
}

export const checkpointFileName = (step: number) => `step-${String(step).padStart(6, '0')}.safetensors`;

export function saveCheckpoint(dir: string, ck: Checkpoint): string {
  const path = join(dir, checkpointFileName(ck.meta.step));
  const tensors = new Map<string, Tensor>([...ck.params, ...ck.state]);
  writeSafetensors(path, tensors, { [META_KEY]: JSON.stringify(CheckpointMetaSchema.parse(ck.meta)) });
  return path;
}

/** A checkpoint file, or the newest one in a folder (the folder itself, its `checkpoints/`, an `--out` folder). */
export function findCheckpoint(path: string): string {
  if (!existsSync(path)) throw new TrainError(`checkpoint '${path}' does not exist`);
  if (statSync(path).isFile()) return path;
  for (const dir of [path, join(path, 'checkpoints')]) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    const files = readdirSync(dir).filter((f) => /^step-\d+\.safetensors$/.test(f)).sort();
    if (files.length > 0) return join(dir, files[files.length - 1]);
  }
  throw new TrainError(`no checkpoint (step-NNNNNN.safetensors) in '${path}' or '${join(path, 'checkpoints')}'`);
}

export function loadCheckpoint(path: string): Checkpoint {
  const file = findCheckpoint(path);
  const st = readSafetensors(file);
  const raw = st.metadata[META_KEY];
  if (!raw) throw new TrainError(`'${file}' is not a training checkpoint (no '${META_KEY}' metadata)`);
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new TrainError(`'${file}': metadata '${META_KEY}' is not JSON: ${(e as Error).message}`);
  }
  const parsed = CheckpointMetaSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TrainError(`'${file}': checkpoint metadata field '${issue?.path.join('.')}': ${issue?.message}`);
  }
  const meta = parsed.data;
  const params = new Map<string, Tensor>();
  const state = new Map<string, Tensor>();
  for (const name of meta.trainables) {
    const t = st.tensors.get(name);
    if (!t) throw new TrainError(`'${file}': trainable '${name}' is missing`);
    params.set(name, t);
  }
  for (const [name, t] of st.tensors) if (!params.has(name)) state.set(name, t);
  return { meta, params, state };
}
