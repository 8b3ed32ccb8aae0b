// One zustand store with three slices: graph (canvas + change log), catalog (node types), ui (theme, dialogs,
// diagnostics, toasts). Host calls live in app/actions.ts, so this file is pure state and testable without a DOM.

import {
  applyEdgeChanges,
  applyNodeChanges,
  type Connection,
  type EdgeChange,
  type NodeChange,
  type Viewport,
  type XYPosition,
} from '@xyflow/react';
import { createStore, type StoreApi } from 'zustand/vanilla';
import { useStore as useZustand } from 'zustand';
import type { Diagnostic, HostEvent, ImportedModel, NodeTypeInfoWire, PortSpecWire, Result } from '../../electron/host/contract.js';
import {
  idleCompare,
  idleExport,
  idleRun,
  idleTrain,
  reduceCompare,
  reduceExport,
  reduceRun,
  reduceTrain,
  type CompareState,
  type ExportState,
  type Panel,
  type PickedImage,
  type RunState,
  type TrainState,
} from './jobs.js';
import { apply, diff, HISTORY_LIMIT, type Transaction } from './history.js';
import {
  connectionProblem,
  copySelection,
  createNode,
  freshNodeId,
  makeEdge,
  mergeInto,
  pasteInto,
  portOfHandle,
  portsKey,
  replaceNodeType,
  withEdgeMeta,
  type AdapterSpec,
  type CatalogIndex,
  type ClipboardPayload,
  type ComposerEdge,
  type ComposerNode,
  type NodeData,
} from './model.js';

export interface GraphSlice {
  name: string;
  /** Where the graph was opened from or last saved to (Electron), for Save without a dialog. */
  filePath: string | null;
  nodes: ComposerNode[];
  edges: ComposerEdge[];
  viewport: Viewport | undefined;
  /** Bumps on every domain change; autosave and validation watch it. */
  revision: number;
  dirty: boolean;
  past: Transaction[];
  future: Transaction[];
  dragStart: ComposerNode[] | null;

  onNodesChange(changes: NodeChange<ComposerNode>[]): void;
  onEdgesChange(changes: EdgeChange<ComposerEdge>[]): void;
  onConnect(connection: Connection): void;
  beginDrag(): void;
  endDrag(): void;
  addNode(type: string, position: XYPosition): string | null;
  deleteSelection(): void;
  setParam(nodeId: string, name: string, value: unknown): void;
  setFrozen(nodeIds: string[], frozen: boolean): void;
  addAdapter(nodeId: string, method: AdapterSpec['method']): void;
  removeAdapter(nodeId: string, adapterId: string): void;
  replaceNode(nodeId: string, newType: string): string[];
  copy(): ClipboardPayload | null;
  paste(payload: ClipboardPayload, at?: XYPosition): void;
  /** Adds another graph's nodes (an imported model), its top-left at `at`; undoable. */
  merge(graph: { nodes: ComposerNode[]; edges: ComposerEdge[] }, at: XYPosition, label: string): void;
  selectAll(): void;
  select(nodeIds: string[]): void;
  loadGraph(graph: { name: string; nodes: ComposerNode[]; edges: ComposerEdge[]; viewport?: Viewport }, filePath?: string | null): void;
  rename(name: string): void;
  markSaved(filePath: string | null): void;
  undo(): void;
  redo(): void;
}

export interface CatalogSlice {
  catalog: CatalogIndex;
  catalogList: NodeTypeInfoWire[];
  catalogError: string | null;
  setCatalog(types: NodeTypeInfoWire[]): void;
  setCatalogError(message: string): void;
}

export type Dialog = 'templates' | 'help' | 'import-folder' | null;
export interface Toast {
  id: number;
  kind: 'info' | 'error' | 'success';
  message: string;
}
export interface SearchState {
  screen: XYPosition;
  flow: XYPosition;
}

/** Parameter counts of the graph as last counted by the host (per node and in total). */
export type ParamCounts = Result<'graph.parameters'>;
export type NodeParamCount = ParamCounts['nodes'][number];

export interface UiSlice {
  theme: 'light' | 'dark';
  dialog: Dialog;
  search: SearchState | null;
  toasts: Toast[];
  diagnostics: Diagnostic[];
  validationNote: string | null;
  /** Null until the host has counted the current graph (or when counting failed). */
  paramCounts: ParamCounts | null;
  /** The same counts by node id (each canvas node reads its own). */
  nodeParamCounts: Record<string, NodeParamCount>;
  autosavedAt: string | null;
  setTheme(theme: 'light' | 'dark'): void;
  openDialog(dialog: Dialog): void;
  openSearch(search: SearchState | null): void;
  toast(kind: Toast['kind'], message: string): void;
  dismissToast(id: number): void;
  setDiagnostics(diagnostics: Diagnostic[], note?: string | null): void;
  setParamCounts(counts: ParamCounts | null): void;
  setAutosavedAt(at: string): void;
}

export interface JobsSlice {
  /** The open tab of the bottom dock; null = collapsed. */
  panel: Panel | null;
  runImage: PickedImage | null;
  prompt: string;
  run: RunState;
  compare: CompareState;
  train: TrainState;
  exportJob: ExportState;
  setPanel(panel: Panel | null): void;
  setRunImage(image: PickedImage | null): void;
  setPrompt(prompt: string): void;
  /** Replaces a job's state (a new job starting, or a request that failed before any event). */
  setRun(run: RunState): void;
  setCompare(compare: CompareState): void;
  setTrain(train: TrainState): void;
  setExport(exportJob: ExportState): void;
  applyEvent(event: HostEvent): void;
  /** Records the ports the host reported for a node's current params (not an undoable change). */
  setNodePorts(nodeId: string, ports: { inputs: PortSpecWire[]; outputs: PortSpecWire[] }): void;
}

/** The Models panel: imported folders, the machine's memory, and an import or upload in progress. */
export interface ModelsSlice {
  models: ImportedModel[];
  memory: { totalBytes: number; freeBytes: number } | null;
  uploadLimitBytes: number | null;
  /** What is being imported right now (`done/total` bytes while a dropped folder uploads); null when idle. */
  importing: { label: string; done?: number; total?: number } | null;
  /** Why the last import failed (shown in the Import dialog; the graph is untouched). */
  importError: string | null;
  setModels(list: { models: ImportedModel[]; memory?: ModelsSlice['memory']; uploadLimitBytes?: number }): void;
  setImporting(importing: ModelsSlice['importing']): void;
  setImportError(message: string | null): void;
}

export type ComposerState = GraphSlice & CatalogSlice & UiSlice & JobsSlice & ModelsSlice;

let toastIds = 1;

export function createComposerStore(): StoreApi<ComposerState> {
  return createStore<ComposerState>()((set, get) => {
    /** Applies a domain change and logs it; no-op changes leave the log alone. */
    const commit = (label: string, next: { nodes: ComposerNode[]; edges: ComposerEdge[] }) => {
      const s = get();
      const tx = diff(label, s, next);
      if (!tx) {
        set({ nodes: next.nodes, edges: next.edges });
        return;
      }
      set({
        nodes: next.nodes,
        edges: next.edges,
        past: [...s.past, tx].slice(-HISTORY_LIMIT),
        future: [],
        revision: s.revision + 1,
        dirty: true,
      });
    };
    const updateNode = (label: string, nodeId: string, update: (data: NodeData) => NodeData) => {
      const s = get();
      commit(label, { nodes: s.nodes.map((n) => (n.id === nodeId ? { ...n, data: update(n.data) } : n)), edges: s.edges });
    };

    return {
      // graph -------------------------------------------------------------------------------------------------
      name: 'Untitled graph',
      filePath: null,
      nodes: [],
      edges: [],
      viewport: undefined,
      revision: 0,
      dirty: false,
      past: [],
      future: [],
      dragStart: null,

      onNodesChange(changes) {
        // Removal goes through deleteSelection (logged); here only selection, dimensions and drag positions.
        const kept = changes.filter((c) => c.type !== 'remove');
        set({ nodes: applyNodeChanges(kept, get().nodes) });
      },
      onEdgesChange(changes) {
        const kept = changes.filter((c) => c.type !== 'remove');
        set({ edges: applyEdgeChanges(kept, get().edges) });
      },
      onConnect(c) {
        const s = get();
        if (connectionProblem(s.catalog, s.nodes, s.edges, c)) return;
        const edge = makeEdge(s.catalog, s.nodes, c.source, portOfHandle(c.sourceHandle), c.target, portOfHandle(c.targetHandle));
        commit('connect', { nodes: s.nodes, edges: [...s.edges, edge] });
      },
      beginDrag() {
        set({ dragStart: get().nodes });
      },
      endDrag() {
        const s = get();
        if (!s.dragStart) return;
        const tx = diff('move', { nodes: s.dragStart, edges: s.edges }, s);
        set({ dragStart: null });
        if (tx) set({ past: [...s.past, tx].slice(-HISTORY_LIMIT), future: [], revision: s.revision + 1, dirty: true });
      },
      addNode(type, position) {
        const s = get();
        const info = s.catalog[type];
        if (!info) return null;
        const id = freshNodeId(type, new Set(s.nodes.map((n) => n.id)));
        const node = { ...createNode(info, id, position), selected: true };
        commit(`add ${info.title}`, { nodes: [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node], edges: s.edges });
        return id;
      },
      deleteSelection() {
        const s = get();
        const gone = new Set(s.nodes.filter((n) => n.selected).map((n) => n.id));
        const edges = s.edges.filter((e) => !e.selected && !gone.has(e.source) && !gone.has(e.target));
        commit('delete', { nodes: s.nodes.filter((n) => !gone.has(n.id)), edges });
      },
      setParam(nodeId, name, value) {
        updateNode(`set ${name}`, nodeId, (d) => ({ ...d, params: { ...d.params, [name]: value } }));
      },
      setFrozen(nodeIds, frozen) {
        const s = get();
        const ids = new Set(nodeIds);
        commit(frozen ? 'freeze' : 'unfreeze', {
          nodes: s.nodes.map((n) => (ids.has(n.id) && n.data.frozen !== frozen ? { ...n, data: { ...n.data, frozen } } : n)),
          edges: s.edges,
        });
      },
      addAdapter(nodeId, method) {
        updateNode(`add ${method}`, nodeId, (d) => {
          const taken = new Set(d.adapters.map((a) => a.id));
          let i = 1;
          while (taken.has(`${method}_${i}`)) i++;
          const adapter: AdapterSpec = { id: `${method}_${i}`, method, config: {} };
          return { ...d, adapters: [...d.adapters, adapter] };
        });
      },
      removeAdapter(nodeId, adapterId) {
        updateNode('remove adapter', nodeId, (d) => ({ ...d, adapters: d.adapters.filter((a) => a.id !== adapterId) }));
      },
      replaceNode(nodeId, newType) {
        const s = get();
        const r = replaceNodeType(s.catalog, s.nodes, s.edges, nodeId, newType);
        commit(`replace with ${newType}`, r);
        return r.dropped;
      },
      copy() {
        const s = get();
        return copySelection(s.nodes, s.edges);
      },
      paste(payload, at) {
        const s = get();
        commit('paste', pasteInto(s.catalog, s.nodes, s.edges, payload, at));
      },
      merge(graph, at, label) {
        const s = get();
        if (graph.nodes.length === 0) return;
        commit(label, mergeInto(s.catalog, s.nodes, s.edges, graph, at));
      },
      selectAll() {
        set({ nodes: get().nodes.map((n) => (n.selected ? n : { ...n, selected: true })) });
      },
      select(nodeIds) {
        const ids = new Set(nodeIds);
        set({ nodes: get().nodes.map((n) => (!!n.selected === ids.has(n.id) ? n : { ...n, selected: ids.has(n.id) })) });
      },
      loadGraph(graph, filePath = null) {
        const s = get();
        set({
          name: graph.name,
          nodes: graph.nodes,
          edges: withEdgeMeta(s.catalog, graph.nodes, graph.edges),
          viewport: graph.viewport,
          filePath,
          past: [],
          future: [],
          revision: s.revision + 1,
          dirty: false,
          diagnostics: [],
          paramCounts: null,
          nodeParamCounts: {},
        });
      },
      rename(name) {
        set({ name, dirty: true, revision: get().revision + 1 });
      },
      markSaved(filePath) {
        set({ dirty: false, filePath });
      },
      undo() {
        const s = get();
        const tx = s.past[s.past.length - 1];
        if (!tx) return;
        set({ ...apply(tx, 'before', s), past: s.past.slice(0, -1), future: [...s.future, tx], revision: s.revision + 1, dirty: true });
      },
      redo() {
        const s = get();
        const tx = s.future[s.future.length - 1];
        if (!tx) return;
        set({ ...apply(tx, 'after', s), future: s.future.slice(0, -1), past: [...s.past, tx], revision: s.revision + 1, dirty: true });
      },

      // catalog -----------------------------------------------------------------------------------------------
      catalog: {},
      catalogList: [],
      catalogError: null,
      setCatalog(types) {
        const catalog: CatalogIndex = {};
        for (const t of types) catalog[t.type] = t;
        const s = get();
        set({ catalog, catalogList: types, catalogError: null, edges: withEdgeMeta(catalog, s.nodes, s.edges) });
      },
      setCatalogError(message) {
        set({ catalogError: message });
      },

      // ui ----------------------------------------------------------------------------------------------------
      theme: 'light',
      dialog: null,
      search: null,
      toasts: [],
      diagnostics: [],
      validationNote: null,
      paramCounts: null,
      nodeParamCounts: {},
      autosavedAt: null,
      setTheme(theme) {
        set({ theme });
      },
      openDialog(dialog) {
        set({ dialog });
      },
      openSearch(search) {
        set({ search });
      },
      toast(kind, message) {
        set({ toasts: [...get().toasts, { id: toastIds++, kind, message }].slice(-4) });
      },
      dismissToast(id) {
        set({ toasts: get().toasts.filter((t) => t.id !== id) });
      },
      setDiagnostics(diagnostics, note = null) {
        set({ diagnostics, validationNote: note });
      },
      setParamCounts(paramCounts) {
        set({ paramCounts, nodeParamCounts: Object.fromEntries((paramCounts?.nodes ?? []).map((n) => [n.id, n])) });
      },
      setAutosavedAt(at) {
        set({ autosavedAt: at });
      },

      // jobs --------------------------------------------------------------------------------------------------
      panel: 'run',
      runImage: null,
      prompt: '',
      run: idleRun,
      compare: idleCompare,
      train: idleTrain,
      exportJob: idleExport,
      setPanel(panel) {
        set({ panel });
      },
      setRunImage(runImage) {
        set({ runImage });
      },
      setPrompt(prompt) {
        set({ prompt });
      },
      setRun(run) {
        set({ run });
      },
      setCompare(compare) {
        set({ compare });
      },
      setTrain(train) {
        set({ train });
      },
      setExport(exportJob) {
        set({ exportJob });
      },
      applyEvent(e) {
        const s = get();
        if (e.channel === 'run.event') set({ run: reduceRun(s.run, e) });
        else if (e.channel === 'compare.event') set({ compare: reduceCompare(s.compare, e) });
        else if (e.channel === 'train.event') set({ train: reduceTrain(s.train, e) });
        else set({ exportJob: reduceExport(s.exportJob, e) });
      },
      setNodePorts(nodeId, ports) {
        const s = get();
        const nodes = s.nodes.map((n) => (n.id === nodeId ? { ...n, data: { ...n.data, ports: { key: portsKey(n.data), ...ports } } } : n));
        set({ nodes, edges: withEdgeMeta(s.catalog, nodes, s.edges) });
      },

      // models ------------------------------------------------------------------------------------------------
      models: [],
      memory: null,
      uploadLimitBytes: null,
      importing: null,
      importError: null,
      setModels({ models, memory, uploadLimitBytes }) {
        const s = get();
        set({ models, memory: memory ?? s.memory, uploadLimitBytes: uploadLimitBytes ?? s.uploadLimitBytes });
      },
      setImporting(importing) {
        set({ importing });
      },
      setImportError(importError) {
        set({ importError });
      },
    };
  });
}

export const composerStore = createComposerStore();

export function useComposer<T>(selector: (s: ComposerState) => T): T {
  return useZustand(composerStore, selector);
}
