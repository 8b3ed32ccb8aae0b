// The host's handle on the engine worker: request/reply by id, events fanned out to listeners, and a fresh worker
// after a crash (a native fault in ORT must not take the host down with it).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EngineFailure, type EngineLink, type JobArgs, type JobEvent, type JobName, type JobResult } from './engine-jobs.js';
import type { WorkerMessage, WorkerReply, WorkerRequest } from './worker-protocol.js';

export { EngineFailure } from './engine-jobs.js';

/**
 * The worker to start. From source (tsx), a small bootstrap registers tsx's loader inside the worker and then
 * imports worker.ts (`--import tsx` in execArgv is not honoured by worker threads on Node 20). In the bundle,
 * worker.js sits beside the host code or under host/.
 */
function createWorker(): Worker {
  const ts = new URL('./worker.ts', import.meta.url);
  if (import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(ts))) {
    const tsxApi = createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs');
    const boot = `import(${JSON.stringify(pathToFileURL(tsxApi).href)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); })`;
    return new Worker(boot, { eval: true });
  }
  for (const candidate of ['./worker.js', './host/worker.js']) {
    const url = new URL(candidate, import.meta.url);
    if (existsSync(fileURLToPath(url))) return new Worker(url);
  }
  throw new EngineFailure('failed', `the engine worker is missing next to ${fileURLToPath(import.meta.url)}`);
}

/** The engine link over the worker thread. */
export class EngineClient implements EngineLink {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: JobResult<JobName>) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<(event: JobEvent) => void>();
  /**
   * Cancel flags in shared memory, by job id. ORT's session.run blocks the worker thread, so a cancel message
   * would wait until the job ends; the worker reads these flags between nodes and generation steps instead.
   */
  private readonly cancelFlags = new Map<string, Int32Array>();

  /** A fresh cancel flag for job `id`, to pass to the worker with the job's args. */
  cancelFlag(id: string): Int32Array {
    const flag = new Int32Array(new SharedArrayBuffer(4));
    this.cancelFlags.set(id, flag);
    return flag;
  }

  /** Raises job `id`'s cancel flag (seen by the worker at once, even mid-run); false when it has none. */
  raiseCancel(id: string): boolean {
    const flag = this.cancelFlags.get(id);
    if (flag) Atomics.store(flag, 0, 1);
    return flag !== undefined;
  }

  onEvent(listener: (event: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  call<J extends JobName>(job: J, args: JobArgs<J>): Promise<JobResult<J>> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    // Keep the process alive while a request is in flight; an idle worker must not (tests, shutdown).
    if (this.pending.size === 0) worker.ref();
    return new Promise<JobResult<J>>((resolve, reject) => {
      // The worker answers request `id` with job J's result (worker.ts runJob).
      this.pending.set(id, { resolve: resolve as (v: JobResult<JobName>) => void, reject });
      const request: WorkerRequest<J> = { id, job, args };
      worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = createWorker();
    worker.on('message', (message: WorkerMessage) => this.receive(message));
    worker.on('error', (e) => this.failAll(`the engine worker crashed: ${e.message}`));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = null;
      if (code !== 0) this.failAll(`the engine worker exited with code ${code}`);
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private receive(message: WorkerMessage): void {
    if (message.kind === 'event') {
      const e = message.event;
      if (e.channel === 'run.event' && (e.type === 'done' || e.type === 'cancelled' || (e.type === 'error' && !e.node))) this.cancelFlags.delete(e.id);
      for (const listener of this.listeners) listener(e);
      return;
    }
    const reply: WorkerReply = message.reply;
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.ok) waiter.resolve(reply.result);
    else waiter.reject(new EngineFailure(reply.code, reply.message));
  }

  private failAll(message: string): void {
    for (const waiter of this.pending.values()) waiter.reject(new EngineFailure('failed', message));
    this.pending.clear();
  }
}
