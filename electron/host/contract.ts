// The contract between the renderer and the host: every request, response and event, as zod schemas and TS types.
// Both transports (Electron IPC and the browser-mode WebSocket) carry exactly these messages; the host validates
// every payload against them. The renderer imports only types from this file.
// Schemas the engine owns are imported from it, not restated: the graph document (engine/document.ts), the training
// config and the job events (engine/messages.ts), the built-in dataset names (engine/datasets/builtin.ts).

import { z } from 'zod';
import { graphDocumentSchema } from '../engine/document.js';
import { compareEventSchema, exportEventSchema, runEventSchema, trainConfigSchema, trainEventSchema } from '../engine/messages.js';

export { graphDocumentSchema } from '../engine/document.js';
export type { AdapterMethod, AdapterSpec } from '../engine/document.js';
export { compareEventSchema, runEventSchema, trainEventSchema } from '../engine/messages.js';
export type { CompareEvent, ExportEvent, ParsedTrainConfig, RunEvent, TrainConfig, TrainEvent } from '../engine/messages.js';
export { BUILTIN_DATASETS, isBuiltinDataset } from '../engine/datasets/builtin.js';

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces

const portKind = z.enum([
  'image', 'video', 'audio', 'text', 'tokens', 'mask', 'embeds', 'pooled', 'logits', 'latent', 'loss', 'kv', 'any',
]);
const nodeFamily = z.enum([
  'encoder', 'input-projector', 'llm', 'output-projector', 'generator', 'io', 'prompt', 'loss', 'imported',
]);

const portSpecSchema = z.object({
  name: z.string(),
  kind: portKind,
  shape: z.array(z.union([z.string(), z.number()])).optional(),
  optional: z.boolean().optional(),
  doc: z.string().optional(),
});

const paramInfoSchema = z.object({
  name: z.string(),
  kind: z.enum(['int', 'float', 'string', 'bool', 'enum', 'json']),
  default: z.unknown(),
  doc: z.string(),
  options: z.array(z.string()).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
});

/** Mirrors `NodeTypeInfo` of electron/nodes/types.ts (engine-jobs.ts returns that type as this one: the compiler checks). */
export const nodeTypeInfoSchema = z.object({
  type: z.string(),
  typeVersion: z.number().int(),
  family: nodeFamily,
  title: z.string(),
  aliases: z.array(z.string()),
  inputs: z.array(portSpecSchema),
  outputs: z.array(portSpecSchema),
  params: z.array(paramInfoSchema),
  doc: z.object({
    summary: z.string(),
    usedBy: z.array(z.string()),
    formula: z.string().optional(),
    details: z.string().optional(),
  }),
});

const nodeId = z.string().min(1);

const diagnosticSchema = z.object({
  severity: z.enum(['error', 'warning']),
  nodeId: z.string().optional(),
  port: z.string().optional(),
  message: z.string(),
  fix: z.string().optional(),
});

/** A file's content as the user picked or dropped it in the browser (there is no path in browser mode). */
const uploadedText = z.object({ source: z.literal('content'), name: z.string().min(1), text: z.string() });
/** Binary content travels base64-encoded so both transports carry plain JSON. */
const uploadedBytes = z.object({ source: z.literal('content'), name: z.string().min(1), base64: z.string() });
const fromDialog = z.object({ source: z.literal('dialog') });
/** A path the user already picked (e.g. a file dropped on the Electron window; its path came from the OS). */
const fromPath = z.object({ source: z.literal('path'), path: z.string().min(1) });

const empty = z.object({}).strict();
const jobId = z.object({ id: z.string().min(1) });

const importedPort = z.object({
  name: z.string(),
  dtype: z.string(),
  shape: z.array(z.union([z.number(), z.string(), z.null()])).nullable(),
});

/**
 * A Hugging Face model folder the user imported (Models panel; the host keeps the list in its data folder). The
 * weights stay where they lie; `uploaded` marks a copy the browser uploaded into the app's data folder.
 */
export const importedModelSchema = z.object({
  dir: z.string().min(1),
  name: z.string(),
  /** Our architecture mapping (electron/formats/hf/architectures/<id>.ts) and the config's class. */
  architecture: z.string(),
  class: z.string(),
  /** Elements of the folder's float tensors. */
  parameters: z.number().int().nonnegative(),
  /** Stored dtypes of the weights (`bfloat16`, `float16`, `float32` …). */
  dtypes: z.array(z.string()),
  weightBytes: z.number().nonnegative(),
  /** Every file of the folder (hub-cache links counted at their blob's size). */
  diskBytes: z.number().nonnegative(),
  fileCount: z.number().int().nonnegative(),
  importedAt: z.string(),
  uploaded: z.boolean(),
  /** The weights' fingerprint (shard names, sizes and headers): the same folder dropped twice is kept once. */
  fingerprint: z.string().optional(),
});

/** Folders a browser uploads (files of a dropped folder) go in chunks; the upload is refused above this size. */
export const MAX_FOLDER_UPLOAD_BYTES = 512 * 2 ** 20;
const uploadId = z.string().regex(/^[A-Za-z0-9-]{8,64}$/, 'an upload id is 8 to 64 letters, digits or dashes');
/** A dropped folder uploaded by the browser (model.uploadFile) into the app's data folder. */
const uploadedFolder = z.object({ source: z.literal('upload'), uploadId, folder: z.string().min(1) });

/** An image given at run time: uploaded content (browser, drop) or a path the user picked (Electron). */
const runImageSchema = z.union([
  z.strictObject({ name: z.string().min(1), base64: z.string().min(1) }),
  z.strictObject({ path: z.string().min(1) }),
]);

/**
 * Run-time data. The image goes to every `io.image` node; the prompt goes to the `io.text` node named by
 * `promptNode`, or to the first `io.text` node in document order.
 */
const runInputsSchema = z.strictObject({
  image: runImageSchema.optional(),
  prompt: z.string().optional(),
  promptNode: nodeId.optional(),
});

/** Compare on a dataset: what to score the variants on, and optionally the training each new variant gets first. */
const compareDatasetSchema = z.strictObject({
  /** A built-in dataset name (`shapes`) or the absolute path of a dataset file the user picked. */
  name: z.string().min(1),
  /** Default: what the graph does (drawing, zero-shot, else captioning). */
  task: z.enum(['caption', 'vqa', 'retrieval', 'zero-shot', 'generation']).optional(),
  split: z.enum(['eval', 'train', 'all']).optional(),
  limit: z.number().int().positive().max(2000).default(50),
  /** Train each new variant's node this many steps with `recipe` before scoring it. */
  trainSteps: z.number().int().positive().max(100_000).optional(),
  recipe: z.string().min(1).optional(),
  /** Re-initialise the original's node and train it the same way. */
  reinit: z.boolean().default(false),
});

// ---------------------------------------------------------------------------------------------------------------
// Methods

export const methods = {
  'engine.info': {
    params: empty,
    result: z.object({
      executionProvider: z.string(),
      availableProviders: z.array(z.string()),
      /** Engine parts by name (every build has them all; the UI enables its panels by them). */
      modules: z.record(z.string(), z.boolean()),
      /** Training recipes the trainer implements (empty without a trainer). */
      recipes: z.array(z.string()),
      dataDir: z.string(),
      mode: z.enum(['electron', 'browser']),
    }),
  },
  'catalog.list': { params: empty, result: z.object({ types: z.array(nodeTypeInfoSchema) }) },
  'templates.list': {
    params: empty,
    result: z.object({
      templates: z.array(
        z.object({ id: z.string(), name: z.string(), nodeCount: z.number().int(), types: z.array(z.string()) }),
      ),
    }),
  },
  'templates.get': {
    params: z.object({ id: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a template id is a file name without folders') }),
    result: z.object({ document: graphDocumentSchema }),
  },
  'graph.validate': {
    params: z.object({ document: graphDocumentSchema }),
    result: z.object({ diagnostics: z.array(diagnosticSchema) }),
  },
  /**
   * Parameter counts per node and in total (trainable / all, as PEFT's print_trainable_parameters), from the built
   * fragments. A node that cannot be built has `error` and no counts; the others are still counted.
   */
  'graph.parameters': {
    params: z.object({ document: graphDocumentSchema, graphPath: z.string().min(1).optional() }),
    result: z.object({
      nodes: z.array(
        z.object({
          id: z.string(),
          /** False for host-side nodes (no weights). */
          onnx: z.boolean(),
          frozen: z.boolean(),
          /** Base weights (a tied embedding is counted for its owner: see sharedWith). */
          params: z.number().int().nonnegative(),
          /** Weights the node's adapters add (always trainable). */
          adapterParams: z.number().int().nonnegative(),
          trainable: z.number().int().nonnegative(),
          bytes: z.number().nonnegative(),
          sharedWith: z.string().optional(),
          /** Counted from weight shapes only (a real-size preset without a checkpoint). */
          describeOnly: z.boolean().optional(),
          error: z.string().optional(),
        }),
      ),
      total: z.object({
        params: z.number().int().nonnegative(),
        trainable: z.number().int().nonnegative(),
        trainablePercent: z.number(),
        bytes: z.number().nonnegative(),
      }),
    }),
  },
  'graph.open': {
    params: z.discriminatedUnion('source', [fromDialog, fromPath, uploadedText]),
    /** `cancelled` when the user closed the dialog. */
    result: z.union([
      z.object({ cancelled: z.literal(true) }),
      z.object({ cancelled: z.literal(false), document: graphDocumentSchema, name: z.string(), path: z.string().optional() }),
    ]),
  },
  'graph.save': {
    params: z.object({
      document: graphDocumentSchema,
      /** dialog: ask where (Electron); path: a path the user picked before; appData: the app's own data folder. */
      target: z.discriminatedUnion('kind', [
        z.object({ kind: z.literal('dialog') }),
        z.object({ kind: z.literal('path'), path: z.string().min(1) }),
        z.object({ kind: z.literal('appData'), fileName: z.string().min(1) }),
      ]),
    }),
    result: z.union([z.object({ cancelled: z.literal(true) }), z.object({ cancelled: z.literal(false), path: z.string() })]),
  },
  'autosave.write': {
    params: z.object({ document: graphDocumentSchema }),
    result: z.object({ savedAt: z.string() }),
  },
  'autosave.recover': {
    params: empty,
    result: z.object({
      found: z.union([z.null(), z.object({ document: graphDocumentSchema, savedAt: z.string() })]),
    }),
  },
  'autosave.clear': { params: empty, result: empty },
  'model.importOnnx': {
    params: z.discriminatedUnion('source', [fromDialog, fromPath, uploadedBytes]),
    result: z.union([
      z.object({ cancelled: z.literal(true) }),
      z.object({
        cancelled: z.literal(false),
        name: z.string(),
        /** Where the model now lives (the app's data folder for uploads, the picked path otherwise). */
        path: z.string(),
        sha256: z.string(),
        opset: z.number().int(),
        inputs: z.array(importedPort),
        outputs: z.array(importedPort),
        parameterCount: z.number().int(),
      }),
    ]),
  },
  /**
   * A Hugging Face model folder (`save_pretrained` layout or a hub-cache snapshot) as a graph whose nodes read the
   * folder's weights where they lie; the folder joins the Models list. `path`: a folder (or its config.json) the OS
   * gave for a drop (Electron), or a path typed in browser mode, where the page is the user (the host is theirs).
   */
  'model.importFolder': {
    params: z.discriminatedUnion('source', [fromDialog, fromPath, uploadedFolder]),
    result: z.union([
      z.object({ cancelled: z.literal(true) }),
      z.object({ cancelled: z.literal(false), document: graphDocumentSchema, model: importedModelSchema, notes: z.array(z.string()) }),
    ]),
  },
  /** One chunk of one file of a dropped folder (browser mode); chunks of a file arrive in order (`offset`). */
  'model.uploadFile': {
    params: z.object({
      uploadId,
      folder: z.string().min(1),
      /** '/'-separated, relative to the folder. */
      path: z.string().min(1),
      offset: z.number().int().nonnegative(),
      base64: z.string(),
    }),
    result: z.object({ uploadBytes: z.number().nonnegative() }),
  },
  /** The imported folders, newest first, and the machine's memory (for the estimate before loading). */
  'models.list': {
    params: empty,
    result: z.object({
      models: z.array(importedModelSchema),
      memory: z.object({ totalBytes: z.number().nonnegative(), freeBytes: z.number().nonnegative() }),
      /** The most a dropped folder may hold to be uploaded (browser mode); a larger one is imported by its path. */
      uploadLimitBytes: z.number().int().positive(),
      /** Set when the list file was damaged (it is kept aside, named here, and a fresh list started). */
      warning: z.string().optional(),
    }),
  },
  /** Removes a folder from the list (its files stay where they are). */
  'models.remove': { params: z.object({ dir: z.string().min(1) }), result: z.object({ models: z.array(importedModelSchema) }) },
  'catalog.ports': {
    /** A node's real ports for its params (they depend on the params for `model.onnx_import`). */
    params: z.object({ type: z.string().min(1), params: z.record(z.string(), z.unknown()).default({}) }),
    result: z.object({ inputs: z.array(portSpecSchema), outputs: z.array(portSpecSchema) }),
  },
  'run.start': {
    params: z.object({
      document: graphDocumentSchema,
      /** Node ids whose outputs are wanted; empty = every output node. */
      outputs: z.array(nodeId).default([]),
      inputs: runInputsSchema.default({}),
      /** The graph file's path (relative paths in the document resolve against its folder). */
      graphPath: z.string().min(1).optional(),
    }),
    result: jobId,
  },
  'run.cancel': { params: jobId, result: empty },
  'compare.start': {
    params: z.object({
      document: graphDocumentSchema,
      /** Replace node `nodeId` with each candidate type in turn and run all variants on the same inputs. */
      nodeId,
      candidates: z.array(z.object({ type: z.string().min(1), params: z.record(z.string(), z.unknown()).default({}) })).min(1),
      inputs: runInputsSchema.default({}),
      /** An image set: every variant runs on each image (empty = `inputs.image` only). */
      images: z.array(runImageSchema).max(32).default([]),
      graphPath: z.string().min(1).optional(),
      /** Compare on a dataset instead: every variant scored with the task's metrics (then `images` is ignored). */
      dataset: compareDatasetSchema.optional(),
    }),
    result: jobId,
  },
  'compare.cancel': { params: jobId, result: empty },
  'train.start': { params: z.object({ document: graphDocumentSchema, config: trainConfigSchema }), result: jobId },
  /** Checkpoints in the app's data folder, newest first. */
  'train.checkpoints': {
    params: empty,
    result: z.object({ checkpoints: z.array(z.object({ path: z.string(), name: z.string(), bytes: z.number(), modifiedAt: z.string() })) }),
  },
  /** Picks a dataset file with the system dialog (Electron); its folder becomes readable for the images. */
  'dataset.pick': { params: empty, result: z.union([z.object({ cancelled: z.literal(true) }), z.object({ cancelled: z.literal(false), path: z.string() })]) },
  'train.pause': { params: jobId, result: empty },
  'train.resume': { params: jobId, result: empty },
  'train.stop': { params: jobId, result: empty },
  'export.start': {
    params: z.object({
      document: graphDocumentSchema,
      format: z.enum(['bundle', 'fused-onnx', 'peft-adapters', 'server-repository', 'hf-folder']),
      target: z.discriminatedUnion('kind', [
        z.object({ kind: z.literal('dialog') }),
        z.object({ kind: z.literal('appData'), folderName: z.string().min(1) }),
      ]),
    }),
    result: jobId,
  },
} as const;

export type MethodName = keyof typeof methods;
export type Params<M extends MethodName> = z.input<(typeof methods)[M]['params']>;
export type ParsedParams<M extends MethodName> = z.output<(typeof methods)[M]['params']>;
export type Result<M extends MethodName> = z.output<(typeof methods)[M]['result']>;

// ---------------------------------------------------------------------------------------------------------------
// Events (host → renderer)

export const hostEventSchema = z.discriminatedUnion('channel', [runEventSchema, compareEventSchema, trainEventSchema, exportEventSchema]);

export type HostEvent = z.infer<typeof hostEventSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Envelopes: identical on both transports. Errors are data, not exceptions (IPC drops custom Error fields).

export type ErrorCode = 'invalid-request' | 'file-policy' | 'not-found' | 'invalid-file' | 'failed';

interface HostError {
  code: ErrorCode;
  message: string;
}

export type Reply<M extends MethodName = MethodName> =
  | { ok: true; result: Result<M> }
  | { ok: false; error: HostError };

/** WebSocket frames. */
export const wsRequestSchema = z.object({ kind: z.literal('request'), id: z.number().int(), method: z.string(), params: z.unknown() });
export type WsFrame =
  | { kind: 'reply'; id: number; reply: Reply }
  | { kind: 'event'; event: HostEvent };

/** How the renderer's client reaches the host: the Electron bridge or the browser-mode WebSocket. */
export interface Transport {
  invoke(method: string, params: unknown): Promise<Reply>;
  onEvent(listener: (event: HostEvent) => void): () => void;
}

/** What the Electron preload exposes as `window.composer`. */
export interface ComposerBridge extends Transport {
  /**
   * The path of a file or folder dropped on the window (Electron's webUtils), which the host then lets the renderer
   * read as a pick; null for anything that has no path (e.g. a File made by a script).
   */
  pathForFile?(file: File): Promise<string | null>;
}

/** Shared types the renderer uses. */
export type NodeTypeInfoWire = z.infer<typeof nodeTypeInfoSchema>;
export type PortSpecWire = z.infer<typeof portSpecSchema>;
export type ParamInfoWire = z.infer<typeof paramInfoSchema>;
/** A graph document as the renderer holds and sends it (engine/document.ts; fields with defaults may be left out). */
export type GraphDocumentWire = z.input<typeof graphDocumentSchema>;
export type Diagnostic = z.infer<typeof diagnosticSchema>;
export type RunImage = z.infer<typeof runImageSchema>;
export type RunInputs = z.infer<typeof runInputsSchema>;
export type CompareDataset = z.input<typeof compareDatasetSchema>;
export type ImportedModel = z.infer<typeof importedModelSchema>;

/** Turns a zod error into one line naming the fields, e.g. `nodes[2].type: expected string`. */
export function describeZodError(error: z.ZodError, what: string): string {
  const parts = error.issues.slice(0, 5).map((issue) => {
    let path = '';
    for (const key of issue.path) path += typeof key === 'number' ? `[${key}]` : path ? `.${String(key)}` : String(key);
    return `${path || '(root)'}: ${issue.message}`;
  });
  const more = error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : '';
  return `${what}: ${parts.join('; ')}${more}`;
}
