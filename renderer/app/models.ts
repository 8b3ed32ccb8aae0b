// Import model folder… and the Models panel's actions: a Hugging Face folder picked (Electron dialog), typed (browser
// mode), dropped on the canvas (its OS path in Electron; uploaded in chunks in browser mode) or listed in the panel
// becomes a graph — opened as the document, or merged into the current graph where it was dropped.

import type { XYPosition } from '@xyflow/react';
import type { GraphDocumentWire, ImportedModel, Params } from '../../electron/host/contract.js';
import { client } from '../api/index.js';
import { formatBytes, formatCount, idleRun, isActive } from '../store/jobs.js';
import { flowFromDocument } from '../store/model.js';
import { dtypeLabel, memoryEstimate, uploadable } from '../store/models.js';
import { composerStore } from '../store/store.js';
import { engineInfo, fileToBase64, requestFit, showDocument } from './actions.js';

const store = () => composerStore.getState();
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Chunk size of a browser upload (base64 adds a third on the wire). */
const CHUNK_BYTES = 8 * 2 ** 20;
const MAX_DEPTH = 6;

/**
 * Where an imported graph goes: `open` replaces the document; `merge` adds its nodes with their top-left at `at`
 * (default: below the graph there, then the view frames both); `auto` opens it on an empty canvas, else merges it.
 */
export type Placement = { kind: 'open' } | { kind: 'merge'; at?: XYPosition } | { kind: 'auto' };

function place(document: GraphDocumentWire, placement: Placement, name: string): void {
  const s = store();
  if (placement.kind === 'open' || (placement.kind === 'auto' && s.nodes.length === 0)) {
    // A new document: the last run's outputs belong to the graph it replaces (its node ids may be the same).
    if (!isActive(s.run.status)) s.setRun(idleRun);
    showDocument(document);
    return;
  }
  const flow = flowFromDocument(document, s.catalog);
  const at = placement.kind === 'merge' ? placement.at : undefined;
  if (at) {
    s.merge(flow, at, `import ${name}`);
    return;
  }
  // Not dropped anywhere: below what is on the canvas, so it covers none of it.
  const x = s.nodes.length ? Math.min(...s.nodes.map((n) => n.position.x)) : 0;
  const y = s.nodes.length ? Math.max(...s.nodes.map((n) => n.position.y + (n.measured?.height ?? 200))) + 80 : 0;
  s.merge(flow, { x, y }, `import ${name}`);
  requestFit();
}

/** One line on a model: class, parameters, dtype, size, and the memory it needs when that exceeds what is free. */
export function describeModel(m: ImportedModel): string {
  const free = store().memory?.freeBytes;
  const need = memoryEstimate(m.parameters);
  const tight = free !== undefined && need > free ? `; loading it needs about ${formatBytes(need)}, more than the ${formatBytes(free)} free` : '';
  return `${m.class} “${m.name}”: ${formatCount(m.parameters)} parameters, ${dtypeLabel(m.dtypes)}, ${formatBytes(m.diskBytes)} on disk${tight}`;
}

export async function refreshModels(): Promise<void> {
  try {
    const r = await client.call('models.list', {});
    store().setModels(r);
    if (r.warning) store().toast('error', r.warning);
  } catch (e) {
    store().toast('error', `Cannot list the imported models: ${message(e)}`);
  }
}

/** Imports a folder; on failure the message (naming file, tensor or field) is shown and the graph stays as it was. */
export async function importModelFolder(
  source: Params<'model.importFolder'>,
  placement: Placement,
  label = 'Importing the model folder…',
  verb = 'Imported',
): Promise<boolean> {
  const s = store();
  s.setImportError(null);
  s.setImporting({ label });
  try {
    const r = await client.call('model.importFolder', source);
    if (r.cancelled) return false;
    // The list first, so the memory the summary compares against is current.
    await refreshModels();
    place(r.document, placement, r.model.name);
    if (store().dialog === 'import-folder') store().openDialog(null);
    store().toast('success', `${verb} ${describeModel(r.model)}`);
    for (const note of r.notes.slice(0, 2)) store().toast('info', note);
    return true;
  } catch (e) {
    store().setImportError(message(e));
    store().toast('error', message(e));
    return false;
  } finally {
    store().setImporting(null);
  }
}

/** Toolbar and palette: the system dialog in Electron, the Import dialog (path field, recent folders) in a browser. */
export function openImportFolder(): void {
  if (engineInfo?.mode === 'electron') void importModelFolder({ source: 'dialog' }, { kind: 'auto' });
  else {
    store().setImportError(null);
    store().openDialog('import-folder');
  }
}

export async function removeModel(dir: string): Promise<void> {
  try {
    const { models } = await client.call('models.remove', { dir });
    store().setModels({ models });
  } catch (e) {
    store().toast('error', message(e));
  }
}

/** Copies a folder's path (the Clipboard API, else a selected text area); the toast shows it either way. */
export async function copyPath(path: string): Promise<void> {
  let copied = false;
  try {
    await navigator.clipboard.writeText(path);
    copied = true;
  } catch {
    const area = document.createElement('textarea');
    area.value = path;
    document.body.append(area);
    area.select();
    copied = document.execCommand('copy');
    area.remove();
  }
  store().toast('info', copied ? `Copied ${path}` : `The folder is at ${path}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Drops

interface DroppedFile {
  path: string;
  file: File;
}

function entryFile(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

function entryChildren(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  // readEntries answers in batches until it answers with none.
  return new Promise((resolve, reject) => {
    const next = () =>
      reader.readEntries((batch) => {
        if (batch.length === 0) resolve(all);
        else {
          all.push(...batch);
          next();
        }
      }, reject);
    next();
  });
}

/** Every file under a dropped folder, with '/'-separated paths relative to it (hidden entries left out). */
async function readFolder(dir: FileSystemDirectoryEntry, prefix = '', depth = 0): Promise<DroppedFile[]> {
  const out: DroppedFile[] = [];
  for (const child of await entryChildren(dir)) {
    if (child.name.startsWith('.')) continue;
    const path = prefix ? `${prefix}/${child.name}` : child.name;
    if (child.isDirectory) {
      if (depth + 1 < MAX_DEPTH) out.push(...(await readFolder(child as FileSystemDirectoryEntry, path, depth + 1)));
    } else out.push({ path, file: await entryFile(child as FileSystemFileEntry) });
  }
  return out;
}

/** Browser mode: the folder's files go into the app's data folder (when small enough), then import from there. */
async function uploadFolder(folder: string, dropped: DroppedFile[], at: XYPosition): Promise<void> {
  const s = store();
  s.setPanel('models');
  if (s.uploadLimitBytes === null) await refreshModels();
  const limit = store().uploadLimitBytes ?? 512 * 2 ** 20;
  const files = uploadable(dropped);
  const total = files.reduce((n, f) => n + f.file.size, 0);
  const fail = (why: string) => {
    store().setImportError(why);
    store().toast('error', why);
  };
  if (files.length === 1 && files[0].path === 'config.json') {
    return fail('A config.json dropped alone brings no weights, and a browser cannot tell where it lies: type its folder’s path in Import model folder…, or drop the whole folder');
  }
  if (!files.some((f) => f.path === 'config.json')) {
    return fail(`“${folder}” has no config.json at its top, so it is not a Hugging Face model folder (drop the folder that holds config.json and the weights)`);
  }
  if (total > limit) {
    fail(`“${folder}” holds ${formatBytes(total)}, more than the ${formatBytes(limit)} a browser uploads: type its path in Import model folder… instead (the weights then stay where they are)`);
    store().openDialog('import-folder');
    return;
  }
  const uploadId = crypto.randomUUID();
  const label = `Uploading “${folder}”`;
  let done = 0;
  s.setImportError(null);
  s.setImporting({ label, done, total });
  try {
    for (const f of files) {
      let offset = 0;
      do {
        const chunk = f.file.slice(offset, offset + CHUNK_BYTES);
        await client.call('model.uploadFile', { uploadId, folder, path: f.path, offset, base64: await fileToBase64(chunk) });
        offset += chunk.size;
        done += chunk.size;
        store().setImporting({ label, done, total });
      } while (offset < f.file.size);
    }
  } catch (e) {
    store().setImporting(null);
    return fail(`Uploading “${folder}” failed: ${message(e)}`);
  }
  await importModelFolder({ source: 'upload', uploadId, folder }, { kind: 'merge', at }, `Importing “${folder}”…`);
}

/**
 * A drop on the canvas that carries a model folder — a folder, or files among which is a config.json — is imported
 * with its nodes placed at `at`; returns false for other drops (an image). Reads the DataTransfer synchronously, as
 * it is only readable during the drop event.
 */
export function takeModelDrop(dt: DataTransfer, at: XYPosition): boolean {
  const items: Array<{ file: File; entry: FileSystemEntry | null }> = [];
  for (const item of Array.from(dt.items)) {
    const file = item.kind === 'file' ? item.getAsFile() : null;
    if (file) items.push({ file, entry: item.webkitGetAsEntry() });
  }
  const folder = items.find((i) => i.entry?.isDirectory);
  const config = items.find((i) => i.file.name === 'config.json');
  if (!folder && !config) return false;
  const bridge = window.composer;
  if (bridge?.pathForFile) {
    // Electron: the OS gives the dropped folder's (or config.json's) path; the weights are read where they lie.
    const pick = (folder ?? config)!.file;
    void bridge.pathForFile(pick).then(
      async (path) => {
        if (path) await importModelFolder({ source: 'path', path }, { kind: 'merge', at });
        else store().toast('error', `“${pick.name}” came without a path on disk; use Import model folder… instead`);
      },
      (e: unknown) => store().toast('error', message(e)),
    );
    return true;
  }
  if (folder) {
    const dir = folder.entry as FileSystemDirectoryEntry;
    void readFolder(dir).then(
      (files) => uploadFolder(dir.name, files, at),
      (e: unknown) => store().toast('error', `Cannot read the dropped folder “${dir.name}”: ${message(e)}`),
    );
  } else {
    void uploadFolder('dropped model', items.map((i) => ({ path: i.file.name, file: i.file })), at);
  }
  return true;
}
