// Actions of the Run, Compare, Train and Export panels: start and steer engine jobs through the host, and route the
// host's events into the store. Also the per-node port query for imported models.

import type { CompareDataset, HostEvent, RunImage, TrainConfig } from '../../electron/host/contract.js';
import { client, HostCallError } from '../api/index.js';
import { hasParamPorts, portsKey } from '../store/model.js';
import {
  idleCompare,
  idleExport,
  idleRun,
  idleTrain,
  isActive,
  type PickedImage,
} from '../store/jobs.js';
import { composerStore } from '../store/store.js';
import { currentDocument, fileToBase64 } from './actions.js';

const store = () => composerStore.getState();
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------------------------------
// Events: a job's first events can overtake the reply that names it, so unknown ids wait in a short buffer.

const early: HostEvent[] = [];
const known = new Set<string>();

function route(e: HostEvent): void {
  const s = store();
  const current = [s.run.id, s.compare.id, s.train.id, s.exportJob.id];
  if (current.includes(e.id)) s.applyEvent(e);
  else if (!known.has(e.id)) {
    early.push(e);
    if (early.length > 400) early.shift();
  }
}

function adopt(id: string): void {
  known.add(id);
  const mine = early.filter((e) => e.id === id);
  for (let i = early.length - 1; i >= 0; i--) if (early[i].id === id) early.splice(i, 1);
  for (const e of mine) store().applyEvent(e);
}

export function listenToJobs(): () => void {
  return client.onEvent(route);
}

// ---------------------------------------------------------------------------------------------------------------
// Images

export async function readImage(file: File): Promise<PickedImage> {
  if (!file.type.startsWith('image/') && !/\.(png|jpe?g|webp|gif|bmp|tiff?)$/i.test(file.name)) {
    throw new Error(`'${file.name}' is not an image (PNG, JPEG, WebP, GIF, BMP or TIFF)`);
  }
  const base64 = await fileToBase64(file);
  return { name: file.name, base64, dataUrl: `data:${file.type || 'image/png'};base64,${base64}` };
}

/** A dropped or picked image becomes the run image (it goes to every Image node). */
export async function takeImageFile(file: File): Promise<void> {
  try {
    store().setRunImage(await readImage(file));
    store().toast('info', `Image “${file.name}” will be fed to the Image node on the next run`);
  } catch (e) {
    store().toast('error', message(e));
  }
}

const wireImage = (img: PickedImage): RunImage => ({ name: img.name, base64: img.base64 });

function runInputs() {
  const s = store();
  const prompt = s.prompt.trim();
  const hasTextNode = s.nodes.some((n) => n.data.type === 'io.text');
  return {
    ...(s.runImage ? { image: wireImage(s.runImage) } : {}),
    ...(prompt && hasTextNode ? { prompt } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Run

export async function startRun(): Promise<void> {
  const s = store();
  if (isActive(s.run.status)) return;
  if (s.nodes.length === 0) {
    s.toast('error', 'Nothing to run: open a template or add nodes first');
    return;
  }
  s.setPanel('run');
  s.setRun({ ...idleRun, status: 'starting', startedAt: Date.now() });
  try {
    const { id } = await client.call('run.start', {
      document: currentDocument(),
      inputs: runInputs(),
      ...(s.filePath ? { graphPath: s.filePath } : {}),
    });
    store().setRun({ ...idleRun, id, status: 'running', startedAt: Date.now() });
    adopt(id);
  } catch (e) {
    store().setRun({ ...idleRun, status: 'error', message: message(e) });
  }
}

export async function cancelRun(): Promise<void> {
  const { id } = store().run;
  if (!id) return;
  await client.call('run.cancel', { id }).catch((e: unknown) => store().toast('error', message(e)));
}

// ---------------------------------------------------------------------------------------------------------------
// Compare

/**
 * Starts a comparison of node `nodeId` against `candidates`: on an image set (the run image when empty), or with
 * `dataset` on a dataset (every variant scored with the task's metrics, and optionally trained first).
 */
export async function startCompare(nodeId: string, candidates: string[], images: PickedImage[], dataset?: CompareDataset): Promise<void> {
  const s = store();
  const node = s.nodes.find((n) => n.id === nodeId);
  if (!node) return;
  const imageNames = dataset ? [] : images.length ? images.map((i) => i.name) : s.runImage ? [s.runImage.name] : ['(graph input)'];
  const base = {
    ...idleCompare, nodeId, imageNames, variants: [node.data.type, ...candidates].map((type) => ({ type })),
    ...(dataset ? { dataset: { name: dataset.name, task: dataset.task } } : {}),
  };
  s.setCompare({ ...base, status: 'starting', total: base.variants.length * imageNames.length });
  try {
    const { id } = await client.call('compare.start', {
      document: currentDocument(),
      nodeId,
      candidates: candidates.map((type) => ({ type, params: {} })),
      inputs: runInputs(),
      ...(dataset ? { dataset } : { images: images.map(wireImage) }),
      ...(s.filePath ? { graphPath: s.filePath } : {}),
    });
    store().setCompare({ ...store().compare, id, status: 'running' });
    adopt(id);
  } catch (e) {
    store().setCompare({ ...base, status: 'error', message: message(e) });
  }
}

export async function cancelCompare(): Promise<void> {
  const { id } = store().compare;
  if (!id) return;
  await client.call('compare.cancel', { id }).catch((e: unknown) => store().toast('error', message(e)));
}

// ---------------------------------------------------------------------------------------------------------------
// Train

export async function startTraining(config: TrainConfig): Promise<void> {
  const s = store();
  s.setTrain({ ...idleTrain, status: 'starting', totalSteps: config.steps });
  try {
    const { id } = await client.call('train.start', { document: currentDocument(), config });
    store().setTrain({ ...store().train, id, status: 'running' });
    adopt(id);
  } catch (e) {
    store().setTrain({ ...idleTrain, status: 'error', message: message(e) });
  }
}

export async function controlTraining(op: 'train.pause' | 'train.resume' | 'train.stop'): Promise<void> {
  const { id } = store().train;
  if (!id) return;
  try {
    await client.call(op, { id });
  } catch (e) {
    store().toast('error', message(e));
  }
}

export async function listCheckpoints(): Promise<Array<{ path: string; name: string; bytes: number; modifiedAt: string }>> {
  try {
    return (await client.call('train.checkpoints', {})).checkpoints;
  } catch (e) {
    store().toast('error', message(e));
    return [];
  }
}

export async function pickDataset(): Promise<string | null> {
  try {
    const r = await client.call('dataset.pick', {});
    return r.cancelled ? null : r.path;
  } catch (e) {
    store().toast('error', message(e));
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Export

export type ExportFormat = 'bundle' | 'fused-onnx' | 'peft-adapters' | 'server-repository' | 'hf-folder';

export async function startExport(format: ExportFormat, target: { kind: 'dialog' } | { kind: 'appData'; folderName: string }): Promise<void> {
  store().setExport({ ...idleExport, status: 'starting' });
  try {
    const { id } = await client.call('export.start', { document: currentDocument(), format, target });
    store().setExport({ ...store().exportJob, id, status: 'running' });
    adopt(id);
  } catch (e) {
    store().setExport({ ...idleExport, status: 'error', message: message(e) });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Ports of imported models: asked for whenever such a node's params change.

const asked = new Set<string>();

export function refreshParamPorts(): void {
  const s = store();
  for (const n of s.nodes) {
    if (!hasParamPorts(s.catalog[n.data.type]) || typeof n.data.params.path !== 'string' || !n.data.params.path) continue;
    const key = portsKey(n.data);
    if (n.data.ports?.key === key || asked.has(`${n.id}|${key}`)) continue;
    asked.add(`${n.id}|${key}`);
    client.call('catalog.ports', { type: n.data.type, params: n.data.params }).then(
      (ports) => {
        const now = store().nodes.find((x) => x.id === n.id);
        if (now && portsKey(now.data) === key) store().setNodePorts(n.id, ports);
      },
      (e: unknown) => {
        const why = e instanceof HostCallError ? e.message : message(e);
        store().toast('error', `Node '${n.id}': cannot read its ports: ${why}`);
      },
    );
  }
}
