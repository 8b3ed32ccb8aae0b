// State of the engine jobs the panels drive (run, compare, train, export): pure reducers over the contract's
// events, so the panels and the canvas only read state. No React, no host calls (those are in app/jobs.ts).

import type { CompareEvent, ExportEvent, RunEvent, TrainEvent } from '../../electron/host/contract.js';

export type Panel = 'run' | 'compare' | 'train' | 'export' | 'models';

/** An image the user dropped or picked, kept in memory for the next runs (not in the graph document). */
export interface PickedImage {
  name: string;
  base64: string;
  dataUrl: string;
}

export type JobStatus = 'idle' | 'starting' | 'running' | 'done' | 'error' | 'cancelled';

export interface NodeRunState {
  status: 'running' | 'computed' | 'cached' | 'error';
  done?: number;
  total?: number;
  /** What `done/total` counts (e.g. `token`). */
  unit?: string;
  ms?: number;
  message?: string;
}

export interface RunState {
  id: string | null;
  status: JobStatus;
  nodes: Record<string, NodeRunState>;
  results: Array<{ node: string; text?: string; imageDataUrl?: string }>;
  computed: string[];
  cached: string[];
  totalMs?: number;
  message?: string;
  startedAt?: number;
}

export const idleRun: RunState = { id: null, status: 'idle', nodes: {}, results: [], computed: [], cached: [] };

/** Folds one run event into the run state; events of another run are ignored. */
export function reduceRun(state: RunState, e: RunEvent): RunState {
  if (e.id !== state.id) return state;
  const node = (id: string, next: NodeRunState) => ({ ...state, nodes: { ...state.nodes, [id]: next } });
  switch (e.type) {
    case 'started':
      return e.node ? node(e.node, { status: 'running' }) : { ...state, status: 'running' };
    case 'progress':
      return e.node ? node(e.node, { status: 'running', done: e.done, total: e.total, unit: e.message }) : state;
    case 'computed': {
      if (!e.node) return state;
      // Keep the last progress (e.g. 12/16 tokens) so the node still shows how far generation went.
      const prev = state.nodes[e.node];
      return node(e.node, { status: 'computed', ms: e.ms, done: prev?.done, total: prev?.total, unit: prev?.unit });
    }
    case 'cached':
      return e.node ? node(e.node, { status: 'cached' }) : state;
    case 'result':
      return e.node ? { ...state, results: [...state.results.filter((r) => r.node !== e.node), { node: e.node, text: e.text, imageDataUrl: e.imageDataUrl }] } : state;
    case 'error':
      if (e.node) return node(e.node, { status: 'error', message: e.message });
      return { ...state, status: 'error', message: e.message };
    case 'cancelled':
      return { ...state, status: 'cancelled', message: 'Cancelled' };
    case 'done':
      return { ...state, status: 'done', computed: e.computed ?? [], cached: e.cached ?? [], totalMs: e.totalMs };
  }
}

export const isActive = (s: JobStatus | TrainStatus) => s === 'starting' || s === 'running';

// ---------------------------------------------------------------------------------------------------------------
// Compare

export interface CompareCell {
  text?: string;
  imageDataUrl?: string;
  latencyMs?: number;
  message?: string;
}

export interface CompareVariant {
  type: string;
  totalParams?: number;
  trainableParams?: number;
  nodeParams?: number;
  /** What the engine noted about this variant (e.g. weights freshly initialised, widths resolved). */
  notes?: string;
  /** Dataset mode: the variant's metrics, mean latency per sample, training and worst samples. */
  metrics?: Record<string, number>;
  paperMetric?: string;
  latencyMs?: number;
  trainMs?: number;
  trainSteps?: number;
  samples?: number;
  misses?: CompareMiss[];
}

export interface CompareMiss {
  id: string;
  imageDataUrl?: string;
  reference: string[];
  prediction: string;
  score?: number;
}

export interface CompareState {
  id: string | null;
  status: JobStatus;
  nodeId: string | null;
  variants: CompareVariant[];
  imageNames: string[];
  /** By `${variant}:${image}`. */
  cells: Record<string, CompareCell>;
  done: number;
  total: number;
  message?: string;
  /** Set when the comparison runs on a dataset (the task it scores). */
  dataset?: { name: string; task?: string; samples?: number };
}

export const idleCompare: CompareState = { id: null, status: 'idle', nodeId: null, variants: [], imageNames: [], cells: {}, done: 0, total: 0 };

export const cellKey = (variant: number, image: number) => `${variant}:${image}`;

export function reduceCompare(state: CompareState, e: CompareEvent): CompareState {
  if (e.id !== state.id) return state;
  switch (e.type) {
    case 'started':
      return {
        ...state, status: 'running', total: e.total ?? state.total,
        ...(state.dataset ? { dataset: { ...state.dataset, task: e.task ?? state.dataset.task, samples: e.samples ?? state.dataset.samples } } : {}),
      };
    case 'progress':
      return { ...state, done: e.done ?? state.done, total: e.total ?? state.total, message: e.message ?? state.message };
    case 'result': {
      const v = e.variant ?? 0;
      const variants = [...state.variants];
      const prev = variants[v] ?? { type: e.nodeType ?? '?' };
      variants[v] = {
        type: e.nodeType ?? prev.type,
        totalParams: e.totalParams ?? prev.totalParams,
        trainableParams: e.trainableParams ?? prev.trainableParams,
        nodeParams: e.nodeParams ?? prev.nodeParams,
        notes: e.message ?? prev.notes,
        ...(e.metrics
          ? { metrics: e.metrics, paperMetric: e.paperMetric, latencyMs: e.latencyMs, trainMs: e.trainMs, trainSteps: e.trainSteps, samples: e.samples, misses: e.misses ?? [] }
          : {}),
      };
      if (e.metrics) return { ...state, variants, done: e.done ?? state.done };
      const imageNames = [...state.imageNames];
      const i = e.image ?? 0;
      if (e.imageName && !imageNames[i]) imageNames[i] = e.imageName;
      const cells = { ...state.cells, [cellKey(v, i)]: { text: e.text, imageDataUrl: e.imageDataUrl, latencyMs: e.latencyMs } };
      return { ...state, variants, imageNames, cells, done: Math.max(state.done, Object.keys(cells).length) };
    }
    case 'error':
      if (e.variant !== undefined) {
        const cells = { ...state.cells, [cellKey(e.variant, e.image ?? 0)]: { message: e.message } };
        return { ...state, cells };
      }
      return { ...state, status: 'error', message: e.message };
    case 'cancelled':
      return { ...state, status: 'cancelled', message: 'Cancelled' };
    case 'done':
      return { ...state, status: 'done', message: e.message };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Train

export type TrainStatus = JobStatus | 'paused' | 'stopped';

export interface TrainState {
  id: string | null;
  status: TrainStatus;
  /** Loss per step (parallel arrays: what uPlot draws). */
  steps: number[];
  losses: number[];
  /** Evaluation metrics: step → name → value. */
  evals: Array<{ step: number; metrics: Record<string, number> }>;
  step: number;
  totalSteps: number;
  elapsedMs: number;
  learningRate?: number;
  checkpoints: string[];
  message?: string;
}

export const idleTrain: TrainState = { id: null, status: 'idle', steps: [], losses: [], evals: [], step: 0, totalSteps: 0, elapsedMs: 0, checkpoints: [] };

export function reduceTrain(state: TrainState, e: TrainEvent): TrainState {
  if (e.id !== state.id) return state;
  const progress = {
    step: e.step ?? state.step,
    totalSteps: e.totalSteps ?? state.totalSteps,
    elapsedMs: e.elapsedMs ?? state.elapsedMs,
    learningRate: e.learningRate ?? state.learningRate,
  };
  const withMetrics = e.metrics && e.step !== undefined ? [...state.evals.filter((x) => x.step !== e.step), { step: e.step, metrics: e.metrics }] : state.evals;
  switch (e.type) {
    case 'started':
      return { ...state, ...progress, status: 'running' };
    case 'step': {
      const hasLoss = e.loss !== undefined && e.step !== undefined && !state.steps.includes(e.step);
      return {
        ...state,
        ...progress,
        status: state.status === 'paused' ? 'paused' : 'running',
        steps: hasLoss ? [...state.steps, e.step!] : state.steps,
        losses: hasLoss ? [...state.losses, e.loss!] : state.losses,
        evals: withMetrics,
      };
    }
    case 'checkpoint':
      return { ...state, ...progress, evals: withMetrics, checkpoints: e.checkpointPath && !state.checkpoints.includes(e.checkpointPath) ? [...state.checkpoints, e.checkpointPath] : state.checkpoints };
    case 'paused':
      return { ...state, ...progress, status: 'paused' };
    case 'resumed':
      return { ...state, ...progress, status: 'running' };
    case 'stopped':
      return { ...state, ...progress, status: 'stopped', message: e.message ?? 'Stopped' };
    case 'done': {
      const final = e.checkpointPath && !state.checkpoints.includes(e.checkpointPath) ? [...state.checkpoints, e.checkpointPath] : state.checkpoints;
      return { ...state, ...progress, evals: withMetrics, checkpoints: final, status: 'done', message: e.message };
    }
    case 'error':
      return { ...state, status: 'error', message: e.message };
  }
}

/** Remaining time from the average step time so far; null before the first step. */
export function etaMs(state: Pick<TrainState, 'step' | 'totalSteps' | 'elapsedMs'>, startStep = 0): number | null {
  const doneSteps = state.step - startStep;
  if (doneSteps <= 0 || state.elapsedMs <= 0 || state.totalSteps <= state.step) return state.totalSteps > 0 && state.step >= state.totalSteps ? 0 : null;
  return (state.elapsedMs / doneSteps) * (state.totalSteps - state.step);
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

// ---------------------------------------------------------------------------------------------------------------
// Export

export interface ExportState {
  id: string | null;
  status: JobStatus;
  log: string[];
  path?: string;
  files: Array<{ path: string; bytes: number }>;
  message?: string;
}

export const idleExport: ExportState = { id: null, status: 'idle', log: [], files: [] };

export function reduceExport(state: ExportState, e: ExportEvent): ExportState {
  if (e.id !== state.id) return state;
  const log = e.message ? [...state.log, e.message].slice(-50) : state.log;
  switch (e.type) {
    case 'started':
      return { ...state, status: 'running', log };
    case 'progress':
      return { ...state, log: e.path && !e.message ? [...state.log, e.path].slice(-50) : log };
    case 'done':
      return { ...state, status: 'done', log, path: e.path ?? state.path, files: e.files ?? state.files };
    case 'error':
      return { ...state, status: 'error', log, message: e.message };
  }
}

/** Three significant digits: 1234567 → "1.23M", 86412 → "86.4K", 303000000 → "303M", 6738415616 → "6.74B". */
export function formatCount(n: number | undefined): string {
  if (n === undefined) return '—';
  // Largest unit first, after rounding: 999,950 is "1M", not "1000K".
  for (const [unit, size] of [['B', 1e9], ['M', 1e6], ['K', 1e3]] as const) {
    const scaled = Number((n / size).toPrecision(3));
    if (scaled >= 1) return `${scaled}${unit}`;
  }
  return String(n);
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
