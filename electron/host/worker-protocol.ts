// Messages between the host (main thread) and the engine worker. Internal to electron/host: both ends are ours,
// and the host has already validated every payload against the contract before it gets here.

import type { EngineFailure, JobArgs, JobEvent, JobName, JobResult } from './engine-jobs.js';

/** One job request; `J` ties the args to the job's name. */
export interface WorkerRequest<J extends JobName = JobName> {
  id: number;
  job: J;
  args: JobArgs<J>;
}

export type WorkerReply =
  | { id: number; ok: true; result: JobResult<JobName> }
  | { id: number; ok: false; code: EngineFailure['code']; message: string };

export type WorkerMessage = { kind: 'reply'; reply: WorkerReply } | { kind: 'event'; event: JobEvent };

/**
 * Run-time inputs as a job entry receives them: the host resolved every path through the file policy, and
 * uploaded images travel as bytes (structured clone carries a Uint8Array between threads).
 */
export type { RunImageInput as WorkerImage, RunJobInputs as WorkerRunInputs } from '../engine/run.js';
