// Engine worker bootstrap: runs in a worker_threads thread (ORT's session.run blocks its thread) and answers the
// host's job requests with the engine jobs of engine-jobs.ts; their events go to the host as they happen.

import { parentPort } from 'node:worker_threads';
import { EngineFailure, runJob, type JobName } from './engine-jobs.js';
import type { WorkerMessage, WorkerReply, WorkerRequest } from './worker-protocol.js';

if (!parentPort) throw new Error('electron/host/worker.ts must run in a worker thread');
const port = parentPort;

function post(message: WorkerMessage): void {
  port.postMessage(message);
}

async function answer<J extends JobName>(req: WorkerRequest<J>): Promise<void> {
  let reply: WorkerReply;
  try {
    const result = await runJob(req.job, req.args, (event) => post({ kind: 'event', event }));
    reply = { id: req.id, ok: true, result };
  } catch (e) {
    reply =
      e instanceof EngineFailure
        ? { id: req.id, ok: false, code: e.code, message: e.message }
        : { id: req.id, ok: false, code: 'failed', message: e instanceof Error ? e.message : String(e) };
  }
  post({ kind: 'reply', reply });
}

port.on('message', (req: WorkerRequest) => void answer(req));
