// User actions that talk to the host: load catalogue and templates, open/save, import, autosave, validation.

import type { GraphDocumentWire, Result } from '../../electron/host/contract.js';
import { client } from '../api/index.js';
import { documentFromFlow, flowFromDocument } from '../store/model.js';
import { composerStore } from '../store/store.js';

const store = () => composerStore.getState();
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export let engineInfo: Result<'engine.info'> | null = null;

export function currentDocument(): GraphDocumentWire {
  const s = store();
  return documentFromFlow(s.name, s.nodes, s.edges, s.viewport);
}

export async function loadEngineInfo(): Promise<Result<'engine.info'> | null> {
  try {
    engineInfo = await client.call('engine.info', {});
  } catch (e) {
    store().toast('error', `Cannot reach the engine: ${message(e)}`);
  }
  return engineInfo;
}

export async function loadCatalog(): Promise<void> {
  try {
    const { types } = await client.call('catalog.list', {});
    store().setCatalog(types);
  } catch (e) {
    store().setCatalogError(message(e));
  }
}

export async function listTemplates(): Promise<Result<'templates.list'>['templates']> {
  const { templates } = await client.call('templates.list', {});
  return templates;
}

export function showDocument(doc: GraphDocumentWire, filePath: string | null = null): void {
  store().loadGraph(flowFromDocument(doc, store().catalog), filePath);
  requestFit();
}

export async function openTemplate(id: string): Promise<void> {
  try {
    const { document } = await client.call('templates.get', { id });
    showDocument(document);
    store().openDialog(null);
    store().toast('success', `Opened template “${document.name}”`);
  } catch (e) {
    store().toast('error', message(e));
  }
}

/** Electron shows a dialog; a browser reads the chosen file and sends its content. */
export async function openGraph(file?: File): Promise<void> {
  try {
    const result = file
      ? await client.call('graph.open', { source: 'content', name: file.name, text: await file.text() })
      : await client.call('graph.open', { source: 'dialog' });
    if (result.cancelled) return;
    showDocument(result.document, result.path ?? null);
    store().toast('success', `Opened ${result.name}`);
  } catch (e) {
    store().toast('error', message(e));
  }
}

function download(fileName: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function saveGraph(saveAs = false): Promise<void> {
  const doc = currentDocument();
  const fileName = `${(doc.name || 'graph').replace(/[\\/:*?"<>|]+/g, '_')}.graph.json`;
  try {
    if (engineInfo?.mode === 'browser') {
      download(fileName, `${JSON.stringify(doc, null, 2)}\n`);
      const r = await client.call('graph.save', { document: doc, target: { kind: 'appData', fileName } });
      if (!r.cancelled) {
        store().markSaved(null);
        store().toast('success', `Downloaded ${fileName} (a copy is in ${r.path})`);
      }
      return;
    }
    const path = store().filePath;
    const r = await client.call('graph.save', { document: doc, target: path && !saveAs ? { kind: 'path', path } : { kind: 'dialog' } });
    if (r.cancelled) return;
    store().markSaved(r.path);
    store().toast('success', `Saved ${r.path}`);
  } catch (e) {
    store().toast('error', message(e));
  }
}

/** A file's (or a slice's) bytes as base64 (in chunks: spreading a whole large file into fromCharCode overflows the stack). */
export async function fileToBase64(file: Blob): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Imports an ONNX file and places a node for it (type `imported.onnx` when the catalogue has it). */
export async function importOnnx(file?: File): Promise<void> {
  try {
    const r = file
      ? await client.call('model.importOnnx', { source: 'content', name: file.name, base64: await fileToBase64(file) })
      : await client.call('model.importOnnx', { source: 'dialog' });
    if (r.cancelled) return;
    const s = store();
    const type = Object.values(s.catalog).find((t) => t.family === 'imported')?.type;
    const summary = `${r.name}: ${r.inputs.length} inputs, ${r.outputs.length} outputs, ${r.parameterCount.toLocaleString()} parameters`;
    if (!type) {
      s.toast('error', `Imported ${summary}, but the node catalogue has no imported-model type yet to place it on the canvas`);
      return;
    }
    const id = s.addNode(type, { x: 80, y: 80 });
    // Its ports come from the file: the port query runs as soon as the path is set (app/jobs.ts).
    if (id) s.setParam(id, 'path', r.path);
    s.toast('success', `Imported ${summary}`);
  } catch (e) {
    store().toast('error', message(e));
  }
}

// Autosave and validation ---------------------------------------------------------------------------------------

export async function recoverAutosave(): Promise<{ document: GraphDocumentWire; savedAt: string } | null> {
  try {
    return (await client.call('autosave.recover', {})).found;
  } catch (e) {
    store().toast('error', message(e));
    return null;
  }
}

export async function discardAutosave(): Promise<void> {
  await client.call('autosave.clear', {}).catch(() => undefined);
}

let autosaveTimer: ReturnType<typeof setTimeout> | null = null;
let validateTimer: ReturnType<typeof setTimeout> | null = null;
let countTimer: ReturnType<typeof setTimeout> | null = null;
let validating = 0;
let counting = 0;

/** Watches the graph revision: autosave after a quiet second, validation and parameter counts after a short pause. */
export function startBackgroundWork(): () => void {
  return composerStore.subscribe((state, prev) => {
    if (state.revision === prev.revision) return;
    if (autosaveTimer) clearTimeout(autosaveTimer);
    autosaveTimer = setTimeout(() => {
      client.call('autosave.write', { document: currentDocument() }).then(
        (r) => store().setAutosavedAt(r.savedAt),
        () => undefined,
      );
    }, 1000);
    if (validateTimer) clearTimeout(validateTimer);
    validateTimer = setTimeout(() => void validateNow(), 300);
    if (countTimer) clearTimeout(countTimer);
    countTimer = setTimeout(() => void countParametersNow(), 400);
  });
}

/** Asks the host for the parameter counts of the current graph; a reply to an older request is dropped. */
export async function countParametersNow(): Promise<void> {
  const ticket = ++counting;
  const s = store();
  try {
    const counts = await client.call('graph.parameters', {
      document: currentDocument(),
      ...(s.filePath ? { graphPath: s.filePath } : {}),
    });
    if (ticket === counting) store().setParamCounts(counts);
  } catch {
    // Counts are a hint: without them the nodes show no count (validation reports what is wrong).
    if (ticket === counting) store().setParamCounts(null);
  }
}

export async function validateNow(): Promise<void> {
  const ticket = ++validating;
  try {
    const { diagnostics } = await client.call('graph.validate', { document: currentDocument() });
    if (ticket === validating) store().setDiagnostics(diagnostics);
  } catch (e) {
    if (ticket !== validating) return;
    store().setDiagnostics([], `Validation failed: ${message(e)}`);
  }
}

// The canvas registers how to fit the view; actions ask for it after loading a graph.
let fitView: (() => void) | null = null;
export function registerFit(fn: () => void): void {
  fitView = fn;
}
export function requestFit(): void {
  setTimeout(() => fitView?.(), 50);
}

let searchAtCentre: (() => void) | null = null;
export function registerSearchAtCentre(fn: () => void): void {
  searchAtCentre = fn;
}
export function openSearchAtCentre(): void {
  searchAtCentre?.();
}
