// Messages between the host (main thread) and the engine worker. Internal to electron/host: both ends are ours,
// and the host has already validated every payload against the contract before it gets here.

import type { HostEvent } from './contract.js';

export type WorkerOp =
  | 'probe'
  | 'catalog.list'
  | 'document.parse'
  | 'document.validate'
  | 'onnx.inspect'
  | 'run.start'
  | 'run.cancel'
  | 'compare.start'
  | 'train.start'
  | 'train.pause'
  | 'train.resume'
  | 'train.stop'
  | 'export.start';

export interface WorkerRequest {
  id: number;
  op: WorkerOp;
  args: unknown;
}

/** `code` mirrors the contract's error codes. */
export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; code: 'not-available' | 'invalid-file' | 'failed' | 'not-found'; message: string };

export type WorkerMessage = { kind: 'reply'; reply: WorkerReply } | { kind: 'event'; event: HostEvent };

/** Engine parts the worker loads on demand; `file` is relative to electron/ (source) or the bundle root. */
export const ENGINE_MODULES = {
  catalog: { file: 'nodes/catalog', exports: ['listNodeTypes'] },
  document: { file: 'engine/document', exports: ['parseGraphDocument', 'graphDocumentFromJson'] },
  validate: { file: 'engine/validate', exports: ['validateDocument'] },
  run: { file: 'engine/run', exports: ['runGraph'] },
  compare: { file: 'engine/compare', exports: ['compareGraph'] },
  train: { file: 'engine/train', exports: ['startTraining'] },
  export: { file: 'export/index', exports: ['exportGraph'] },
} as const;

export type EngineModuleName = keyof typeof ENGINE_MODULES;
