/**
 * Resumable, seeded mini-batch order over a dataset of `size` samples. Each epoch's order is a permutation drawn from
 * a stream forked from (seed, epoch), so the order never depends on how far earlier epochs got, and the sampler's
 * whole state is two integers: checkpoints store `state()` and a resumed run continues with the same batches.
 */
import { z } from 'zod';
import { Rng, type Seed } from '../rng.js';
import { DatasetError } from './types.js';

export const SamplerStateSchema = z.object({
  epoch: z.number().int().min(0),
  position: z.number().int().min(0),
});
export type SamplerState = z.infer<typeof SamplerStateSchema>;

export interface SamplerOptions {
  seed?: Seed;
  /** Shuffle every epoch (default true); false walks 0..size-1 in order. */
  shuffle?: boolean;
  /** Drop a last batch that would be smaller than the batch size (default false). */
  dropLast?: boolean;
}

export interface Batch {
  epoch: number;
  indices: number[];
}

export class EpochSampler {
  private epoch = 0;
  private position = 0;
  private order: number[] | undefined;
  private readonly root: Rng;

  constructor(readonly size: number, readonly options: SamplerOptions = {}) {
    if (!Number.isInteger(size) || size <= 0) throw new DatasetError(`sampler: dataset size must be a positive integer, got ${size}`);
    this.root = new Rng(options.seed ?? 0).fork('epoch-sampler');
  }

  /** Order of the samples in `epoch`. */
  epochOrder(epoch: number): number[] {
    if (this.options.shuffle === false) return Array.from({ length: this.size }, (_, i) => i);
    return this.root.fork(epoch).permutation(this.size);
  }

  /** The next batch; crosses into the next epoch when the current one is used up. */
  next(batchSize: number): Batch {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new DatasetError(`sampler: batch size must be a positive integer, got ${batchSize}`);
    if (this.options.dropLast && batchSize > this.size) {
      throw new DatasetError(`sampler: batch size ${batchSize} exceeds the dataset size ${this.size} with dropLast`);
    }
    const remaining = this.size - this.position;
    if (remaining === 0 || (this.options.dropLast && remaining < batchSize)) {
      this.epoch++;
      this.position = 0;
      this.order = undefined;
    }
    this.order ??= this.epochOrder(this.epoch);
    const indices = this.order.slice(this.position, this.position + batchSize);
    this.position += indices.length;
    return { epoch: this.epoch, indices };
  }

  state(): SamplerState {
    return { epoch: this.epoch, position: this.position };
  }

  restore(state: unknown): void {
    const parsed = SamplerStateSchema.safeParse(state);
    if (!parsed.success) throw new DatasetError(`sampler state: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    if (parsed.data.position > this.size) {
      throw new DatasetError(`sampler state: position ${parsed.data.position} is beyond the dataset size ${this.size}`);
    }
    this.epoch = parsed.data.epoch;
    this.position = parsed.data.position;
    this.order = undefined;
  }
}
