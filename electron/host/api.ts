// The host API: one implementation of the contract, served by Electron IPC (main.ts) and by the browser-mode
// WebSocket (server.ts). It validates every request, enforces the file policy and forwards engine work to the worker.

import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, freemem, totalmem } from 'node:os';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic } from '../onnx/atomic.js';
import {
  describeZodError,
  graphDocumentSchema,
  hostEventSchema,
  isBuiltinDataset,
  MAX_FOLDER_UPLOAD_BYTES,
  methods,
  type ErrorCode,
  type HostEvent,
  type ImportedModel,
  type MethodName,
  type ParsedParams,
  type Reply,
  type Result,
  type RunImage,
  type RunInputs,
} from './contract.js';
import type { WorkerImage, WorkerRunInputs } from './worker-protocol.js';
import { EngineClient, EngineFailure } from './engine-client.js';
import { FilePolicy, FilePolicyError } from './files.js';
import { FolderUploads, ModelList, ModelsError } from './models.js';

/** Native dialogs exist only in Electron; browser mode uploads and downloads instead. */
export interface Dialogs {
  openFile(options: { title: string; extensions: string[] }): Promise<string | null>;
  saveFile(options: { title: string; defaultName: string; extensions: string[] }): Promise<string | null>;
  pickFolder(options: { title: string }): Promise<string | null>;
}

interface HostApiOptions {
  mode: 'electron' | 'browser';
  dataDir: string;
  templatesDir: string;
  dialogs?: Dialogs;
}

class HostFailure extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = 'HostFailure';
  }
}

type Handler<M extends MethodName> = (params: ParsedParams<M>) => Promise<Result<M>>;
type Handlers = { [M in MethodName]: Handler<M> };

const MAX_UPLOAD_BYTES = 2 ** 31 - 1; // protobuf's own limit for one ONNX file

export interface HostApi {
  readonly files: FilePolicy;
  call(method: string, params: unknown): Promise<Reply>;
  onEvent(listener: (event: HostEvent) => void): () => void;
  close(): Promise<void>;
}

export function createHostApi(options: HostApiOptions): HostApi {
  const files = new FilePolicy(options.dataDir);
  const engine = new EngineClient();
  const listeners = new Set<(event: HostEvent) => void>();
  engine.onEvent((raw) => {
    const event = hostEventSchema.safeParse(raw);
    if (!event.success) {
      process.stderr.write(`${describeZodError(event.error, 'engine sent a malformed event')}\n`);
      return;
    }
    for (const listener of listeners) listener(event.data);
  });

  function needDialogs(what: string): Dialogs {
    if (!options.dialogs) {
      throw new HostFailure('invalid-request', `${what} needs a file dialog, which browser mode does not have; upload the file instead`);
    }
    return options.dialogs;
  }

  async function parseGraphText(name: string, text: string) {
    return engine.call('document.parse', { name, text });
  }

  function readText(path: string): string {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new HostFailure('not-found', `cannot read '${path}': ${(e as Error).message}`);
    }
  }

  const autosavePath = () => files.dataPath('autosave.graph.json');

  // The Models list: folders imported before were the user's picks, so they stay readable in this session too.
  const modelList = new ModelList(files.dataPath('models.json'));
  const uploads = new FolderUploads(files);
  for (const m of modelList.read()) files.grantModelFolder(m.dir);

  /** A typed or dropped pick: the folder itself, or the folder of its config.json. */
  function folderOfPick(path: string): string {
    let p = path.trim();
    if (p === '~' || p.startsWith('~/')) p = join(homedir(), p.slice(1));
    if (!isAbsolute(p)) throw new FilePolicyError(`'${path}' is not an absolute path; type the folder's full path (e.g. /home/me/models/llama)`);
    return basename(p) === 'config.json' ? dirname(p) : p;
  }

  async function importFolderAt(dir: string, uploaded: boolean, dedupe = uploaded): Promise<Result<'model.importFolder'>> {
    const r = await engine.call('hf.import', { dir });
    const s = r.summary;
    const fingerprint = r.document.nodes.find((n) => n.weights?.hf)?.weights?.hf?.fingerprint;
    if (dedupe && fingerprint) {
      // The same folder uploaded again: keep the first copy (the graphs made from it read it) and drop this one
      // (`models/<uploadId>/` in the data folder).
      const twin = modelList.read().find((m) => m.uploaded && m.name === s.name && m.fingerprint === fingerprint && m.dir !== s.dir && existsSync(m.dir));
      const upload = dirname(s.dir);
      if (twin && dirname(upload) === files.dataPath('models')) {
        rmSync(upload, { recursive: true, force: true });
        return importFolderAt(twin.dir, true, false);
      }
    }
    const model: ImportedModel = {
      dir: s.dir,
      name: s.name,
      architecture: s.architecture,
      class: s.class,
      parameters: s.parameters,
      dtypes: s.dtypes,
      weightBytes: s.weightBytes,
      diskBytes: s.files.reduce((n, f) => n + f.bytes, 0),
      fileCount: s.files.length,
      importedAt: new Date().toISOString(),
      uploaded,
      ...(fingerprint ? { fingerprint } : {}),
    };
    modelList.add(model);
    return { cancelled: false, document: r.document, model, notes: r.notes };
  }

  async function importModelAt(path: string, name: string): Promise<Result<'model.importOnnx'>> {
    const info = await engine.call('onnx.inspect', { path });
    return { cancelled: false, name, path, ...info };
  }

  /** Uploaded images become bytes; a path must pass the file policy. */
  function workerImage(image: RunImage, what: string): WorkerImage {
    if ('path' in image) return { name: basename(image.path), path: files.check(image.path) };
    const bytes = Buffer.from(image.base64, 'base64');
    if (bytes.length === 0) throw new HostFailure('invalid-file', `${what} '${image.name}' is empty`);
    return { name: image.name, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) };
  }

  function workerInputs(inputs: RunInputs): WorkerRunInputs {
    return {
      ...(inputs.image ? { image: workerImage(inputs.image, 'the run image') } : {}),
      ...(inputs.prompt !== undefined ? { prompt: inputs.prompt } : {}),
      ...(inputs.promptNode ? { promptNode: inputs.promptNode } : {}),
    };
  }

  /** Relative paths in a graph resolve against its file's folder; unsaved graphs against the templates folder. */
  function baseDirFor(graphPath: string | undefined): string {
    return graphPath ? dirname(files.check(graphPath)) : options.templatesDir;
  }

  const checkpointsDir = () => files.dataPath('checkpoints');

  const handlers: Handlers = {
    'engine.info': async () => {
      const probe = await engine.call('probe', {});
      return { ...probe, dataDir: files.dataDir, mode: options.mode };
    },

    'catalog.list': () => engine.call('catalog.list', {}),

    'catalog.ports': async ({ type, params }) => {
      // An imported model's ports come from its file: only files the user picked may be read.
      const checked = typeof params.path === 'string' && params.path ? { ...params, path: files.check(params.path) } : params;
      return engine.call('catalog.ports', { type, params: checked });
    },

    'templates.list': async () => {
      let names: string[];
      try {
        names = readdirSync(options.templatesDir).filter((n) => n.endsWith('.graph.json')).sort();
      } catch {
        names = [];
      }
      const templates: Result<'templates.list'>['templates'] = [];
      for (const fileName of names) {
        const path = join(options.templatesDir, fileName);
        let json: unknown;
        try {
          json = JSON.parse(readFileSync(path, 'utf8'));
        } catch (e) {
          process.stderr.write(`template '${path}' is not valid JSON and is skipped: ${(e as Error).message}\n`);
          continue;
        }
        const doc = graphDocumentSchema.safeParse(json);
        if (!doc.success) {
          process.stderr.write(`${describeZodError(doc.error, `template '${path}' is skipped`)}\n`);
          continue;
        }
        templates.push({
          id: fileName.slice(0, -'.graph.json'.length),
          name: doc.data.name,
          nodeCount: doc.data.nodes.length,
          types: [...new Set(doc.data.nodes.map((n) => n.type))],
        });
      }
      return { templates };
    },

    'templates.get': async ({ id }) => {
      const path = join(options.templatesDir, `${id}.graph.json`);
      return parseGraphText(`${id}.graph.json`, readText(path));
    },

    'graph.validate': ({ document }) => engine.call('document.validate', { document }),

    'graph.parameters': ({ document, graphPath }) => engine.call('document.parameters', { document, baseDir: baseDirFor(graphPath) }),

    'graph.open': async (params) => {
      if (params.source === 'content') {
        const { document } = await parseGraphText(params.name, params.text);
        return { cancelled: false, document, name: params.name };
      }
      let path: string;
      if (params.source === 'dialog') {
        const picked = await needDialogs('Open').openFile({ title: 'Open graph', extensions: ['json'] });
        if (!picked) return { cancelled: true };
        path = files.grantFile(picked);
      } else {
        path = files.check(params.path);
      }
      const { document } = await parseGraphText(basename(path), readText(path));
      return { cancelled: false, document, name: basename(path), path };
    },

    'graph.save': async ({ document, target }) => {
      let path: string;
      if (target.kind === 'dialog') {
        const picked = await needDialogs('Save as').saveFile({
          title: 'Save graph',
          defaultName: `${document.name || 'graph'}.graph.json`,
          extensions: ['json'],
        });
        if (!picked) return { cancelled: true };
        path = files.grantFile(picked);
      } else if (target.kind === 'path') {
        path = files.check(target.path);
      } else {
        let name = FilePolicy.plainFileName(target.fileName, 'file name');
        if (!name.endsWith('.graph.json')) name += '.graph.json';
        path = files.dataPath('graphs', name);
      }
      writeFileAtomic(path, `${JSON.stringify(document, null, 2)}\n`);
      return { cancelled: false, path };
    },

    'autosave.write': async ({ document }) => {
      const savedAt = new Date().toISOString();
      writeFileAtomic(autosavePath(), JSON.stringify({ savedAt, document }));
      return { savedAt };
    },

    'autosave.recover': async () => {
      let text: string;
      try {
        text = readFileSync(autosavePath(), 'utf8');
      } catch {
        return { found: null };
      }
      let json: { savedAt?: unknown; document?: unknown };
      try {
        json = JSON.parse(text) as typeof json;
      } catch (e) {
        throw new HostFailure('invalid-file', `the autosave file '${autosavePath()}' is damaged: ${(e as Error).message}`);
      }
      const doc = graphDocumentSchema.safeParse(json.document);
      if (!doc.success || typeof json.savedAt !== 'string') {
        const why = doc.success ? 'savedAt is missing' : describeZodError(doc.error, 'document');
        throw new HostFailure('invalid-file', `the autosave file '${autosavePath()}' is damaged: ${why}`);
      }
      return { found: { document: doc.data, savedAt: json.savedAt } };
    },

    'autosave.clear': async () => {
      rmSync(autosavePath(), { force: true });
      return {};
    },

    'model.importOnnx': async (params) => {
      if (params.source === 'content') {
        const bytes = Buffer.from(params.base64, 'base64');
        if (bytes.length === 0) throw new HostFailure('invalid-file', `'${params.name}' is empty`);
        if (bytes.length > MAX_UPLOAD_BYTES) throw new HostFailure('invalid-file', `'${params.name}' is larger than 2 GiB`);
        const name = FilePolicy.plainFileName(params.name, 'model file name');
        const dir = files.dataPath('models', randomUUID());
        mkdirSync(dir, { recursive: true });
        const path = join(dir, name.endsWith('.onnx') ? name : `${name}.onnx`);
        writeFileAtomic(path, bytes);
        return importModelAt(path, name);
      }
      let path: string;
      if (params.source === 'dialog') {
        const picked = await needDialogs('Import model').openFile({ title: 'Import ONNX model', extensions: ['onnx'] });
        if (!picked) return { cancelled: true };
        // External data sits beside the model, so its folder is readable too (confined by the ONNX loader).
        path = files.grantFile(picked);
        files.grantFolder(join(path, '..'));
      } else {
        path = files.check(params.path);
      }
      return importModelAt(path, basename(path));
    },

    'model.importFolder': async (params) => {
      if (params.source === 'upload') return importFolderAt(uploads.finish(params.uploadId, params.folder), true);
      let dir: string;
      if (params.source === 'dialog') {
        const picked = await needDialogs('Import model folder').pickFolder({ title: 'Import a Hugging Face model folder' });
        if (!picked) return { cancelled: true };
        dir = files.grantModelFolder(picked);
      } else if (options.mode === 'browser') {
        // The page holds this launch's token, i.e. it is the user: a path typed there is the user's own pick.
        dir = files.grantModelFolder(folderOfPick(params.path));
      } else {
        // Electron: a folder dropped on the window (the main process granted the path the OS gave).
        dir = files.check(folderOfPick(params.path));
      }
      return importFolderAt(dir, false);
    },
    'model.uploadFile': async (params) => ({ uploadBytes: uploads.write(params) }),
    'models.list': async () => {
      const models = modelList.read();
      const warning = modelList.takeWarning();
      return {
        models,
        memory: { totalBytes: totalmem(), freeBytes: freemem() },
        uploadLimitBytes: MAX_FOLDER_UPLOAD_BYTES,
        ...(warning ? { warning } : {}),
      };
    },
    'models.remove': async ({ dir }) => ({ models: modelList.remove(dir) }),

    'run.start': async ({ document, outputs, inputs, graphPath }) => {
      const args = { document, outputs, inputs: workerInputs(inputs), baseDir: baseDirFor(graphPath) };
      const id = randomUUID();
      return engine.call('run.start', { ...args, id, cancelFlag: engine.cancelFlag(id) });
    },
    'run.cancel': async ({ id }) => {
      engine.raiseCancel(id);
      await engine.call('run.cancel', { id });
      return {};
    },
    'compare.start': ({ document, nodeId, candidates, inputs, images, graphPath, dataset }) =>
      engine.call('compare.start', {
        id: randomUUID(),
        document,
        nodeId,
        candidates,
        inputs: workerInputs(inputs),
        images: images.map((im, i) => workerImage(im, `image ${i + 1} of the set`)),
        baseDir: baseDirFor(graphPath),
        // A dataset file is read only when the user picked it (its folder holds the images).
        ...(dataset ? { dataset: { ...dataset, name: isBuiltinDataset(dataset.name) ? dataset.name : files.check(dataset.name) } } : {}),
      }),
    'compare.cancel': async ({ id }) => {
      await engine.call('compare.cancel', { id });
      return {};
    },
    'train.start': async ({ document, config }) => {
      const builtin = isBuiltinDataset(config.dataset);
      const checked = {
        ...config,
        dataset: builtin ? config.dataset : files.check(config.dataset),
        ...(config.resumeFrom ? { resumeFrom: files.check(config.resumeFrom) } : {}),
      };
      const id = randomUUID();
      const checkpointDir = files.dataPath('checkpoints', id);
      mkdirSync(checkpointDir, { recursive: true });
      return engine.call('train.start', { document, config: checked, baseDir: options.templatesDir, checkpointDir, id });
    },
    'train.checkpoints': async () => {
      const root = checkpointsDir();
      const found: Result<'train.checkpoints'>['checkpoints'] = [];
      const walk = (dir: string, depth: number) => {
        let entries;
        try {
          entries = readdirSync(dir, { withFileTypes: true });
        } catch {
          return;
        }
        for (const e of entries) {
          const full = join(dir, e.name);
          if (e.isDirectory() && depth < 2) walk(full, depth + 1);
          else if (e.isFile() && e.name.endsWith('.safetensors')) {
            const st = statSync(full);
            found.push({ path: full, name: relative(root, full), bytes: st.size, modifiedAt: st.mtime.toISOString() });
          }
        }
      };
      walk(root, 0);
      found.sort((a, b) => b.modifiedAt.localeCompare(a.modifiedAt));
      return { checkpoints: found };
    },
    'dataset.pick': async () => {
      const picked = await needDialogs('Pick a dataset').openFile({ title: 'Dataset (jsonl, csv, COCO or LLaVA json)', extensions: ['jsonl', 'json', 'csv'] });
      if (!picked) return { cancelled: true };
      const path = files.grantFile(picked);
      // Dataset files name their images relative to their own folder.
      files.grantFolder(dirname(path));
      return { cancelled: false, path };
    },
    'train.pause': async ({ id }) => {
      await engine.call('train.pause', { id });
      return {};
    },
    'train.resume': async ({ id }) => {
      await engine.call('train.resume', { id });
      return {};
    },
    'train.stop': async ({ id }) => {
      await engine.call('train.stop', { id });
      return {};
    },
    'export.start': async ({ document, format, target }) => {
      let folder: string;
      if (target.kind === 'dialog') {
        const picked = await needDialogs('Export').pickFolder({ title: 'Export to folder' });
        if (!picked) throw new HostFailure('invalid-request', 'export cancelled: no folder was picked');
        folder = files.grantFolder(picked);
      } else {
        folder = files.dataPath('exports', FilePolicy.plainFileName(target.folderName, 'export folder name'));
      }
      return engine.call('export.start', { id: randomUUID(), document, format, folder, baseDir: options.templatesDir });
    },
  };

  async function call(method: string, params: unknown): Promise<Reply> {
    if (!Object.hasOwn(methods, method)) {
      return { ok: false, error: { code: 'invalid-request', message: `unknown method '${method}'` } };
    }
    const name = method as MethodName;
    const spec = methods[name];
    const parsed = spec.params.safeParse(params ?? {});
    if (!parsed.success) {
      return { ok: false, error: { code: 'invalid-request', message: describeZodError(parsed.error, `${name} request`) } };
    }
    try {
      const handler = handlers[name] as (p: unknown) => Promise<unknown>;
      const result = spec.result.safeParse(await handler(parsed.data));
      if (!result.success) {
        return { ok: false, error: { code: 'failed', message: describeZodError(result.error, `${name} produced a malformed reply`) } };
      }
      return { ok: true, result: result.data } as Reply;
    } catch (e) {
      return { ok: false, error: toHostError(e) };
    }
  }

  return {
    files,
    call,
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => engine.close(),
  };
}

function toHostError(e: unknown): { code: ErrorCode; message: string } {
  if (e instanceof HostFailure || e instanceof EngineFailure) return { code: e.code, message: e.message };
  if (e instanceof FilePolicyError) return { code: 'file-policy', message: e.message };
  if (e instanceof ModelsError) return { code: e.code, message: e.message };
  return { code: 'failed', message: e instanceof Error ? e.message : String(e) };
}
