// Messages between the host (main thread) and the engine worker. Internal to electron/host: both ends are ours,
// and the host has already validated every payload against the contract before it gets here.

import type { HostEvent } from './contract.js';

export type WorkerOp =
  | 'probe'
  | 'catalog.list'
  | 'catalog.ports'
  | 'document.parse'
  | 'document.validate'
  | 'document.parameters'
  | 'onnx.inspect'
  | 'hf.import'
  | 'run.start'
  | 'run.cancel'
  | 'compare.start'
  | 'compare.cancel'
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

/**
 * Engine parts the worker loads on demand; `file` is relative to electron/ (source) or the bundle root. The first
 * export of a job module is its entry, called as `(args with id, emit)`; the others are its controls, `(args with id)`.
 */
export const ENGINE_MODULES = {
  catalog: { file: 'nodes/catalog', exports: ['listNodeTypes', 'getNodeType', 'portsOf'] },
  document: { file: 'engine/document', exports: ['parseGraphDocument', 'graphDocumentFromJson'] },
  validate: { file: 'engine/validate', exports: ['validateDocument'] },
  parameters: { file: 'engine/param-stats', exports: ['parameterStats'] },
  run: { file: 'engine/run', exports: ['runGraph', 'cancelRun'] },
  compare: { file: 'engine/compare', exports: ['compareGraph'] },
  train: { file: 'engine/train', exports: ['startTraining', 'pauseTraining', 'resumeTraining', 'stopTraining'] },
  recipes: { file: 'engine/trainer/recipes', exports: ['RECIPE_NAMES'] },
  export: { file: 'export/index', exports: ['exportGraph'] },
  hf: { file: 'formats/hf/import', exports: ['importHfFolder'] },
} as const;

/** Control ops and the engine function each one calls. */
export const CONTROL_FUNCTIONS = {
  'run.cancel': { module: 'run', fn: 'cancelRun' },
  'compare.cancel': { module: 'compare', fn: 'cancelCompare' },
  'train.pause': { module: 'train', fn: 'pauseTraining' },
  'train.resume': { module: 'train', fn: 'resumeTraining' },
  'train.stop': { module: 'train', fn: 'stopTraining' },
} as const;

/**
 * Run-time inputs as a job entry receives them: the host resolved every path through the file policy, and
 * uploaded images travel as bytes (structured clone carries a Uint8Array between threads).
 */
export type { RunImageInput as WorkerImage, RunJobInputs as WorkerRunInputs } from '../engine/run.js';

export type EngineModuleName = keyof typeof ENGINE_MODULES;
