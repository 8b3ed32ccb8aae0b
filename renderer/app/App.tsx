// The application shell: toolbar, palette, canvas, inspector, status bar and overlays.

import { ReactFlowProvider } from '@xyflow/react';
import { useEffect, useRef, useState } from 'react';
import type { GraphDocumentWire, Result } from '../../electron/host/contract.js';
import { Canvas } from '../canvas/Canvas.js';
import { parseClipboard } from '../store/model.js';
import { composerStore, useComposer } from '../store/store.js';
import { Inspector } from '../panels/Inspector.js';
import { CanvasSearch, RecoveryPrompt, ShortcutsHelp, TemplatesGallery, Toasts } from '../panels/Overlays.js';
import { Palette } from '../panels/Palette.js';
import { Dock } from '../panels/Dock.js';
import { ImportFolderDialog } from '../panels/ImportFolderDialog.js';
import { formatCount, isActive } from '../store/jobs.js';
import { cancelRun, listenToJobs, refreshParamPorts, startRun } from './jobs.js';
import {
  importOnnx,
  loadCatalog,
  loadEngineInfo,
  openGraph,
  recoverAutosave,
  saveGraph,
  countParametersNow,
  startBackgroundWork,
  validateNow,
} from './actions.js';
import { handleShortcut } from './shortcuts.js';
import { openImportFolder, refreshModels } from './models.js';

const THEME_KEY = 'composer.theme';

function Toolbar({ info }: { info: Result<'engine.info'> | null }) {
  const name = useComposer((s) => s.name);
  const dirty = useComposer((s) => s.dirty);
  const canUndo = useComposer((s) => s.past.length > 0);
  const canRedo = useComposer((s) => s.future.length > 0);
  const theme = useComposer((s) => s.theme);
  const openInput = useRef<HTMLInputElement>(null);
  const importInput = useRef<HTMLInputElement>(null);
  const st = composerStore.getState();
  const browser = info?.mode !== 'electron';
  const runAvailable = info?.modules.run === true;
  const running = useComposer((s) => isActive(s.run.status));

  return (
    <header className="toolbar">
      <div className="brand">
        <span className="logo" aria-hidden>
          ◆
        </span>
        Composer
      </div>
      <input
        className="graph-name"
        value={name}
        onChange={(e) => st.rename(e.target.value)}
        aria-label="Graph name"
        spellCheck={false}
      />
      {dirty && <span className="dirty-dot" title="Unsaved changes" />}
      <div className="tb-group">
        <button onClick={() => st.openDialog('templates')}>Templates</button>
        <button id="open-graph" onClick={() => (browser ? openInput.current?.click() : void openGraph())}>
          Open
        </button>
        <button onClick={() => void saveGraph()}>Save</button>
        <button onClick={() => (browser ? importInput.current?.click() : void importOnnx())}>Import ONNX</button>
        <button
          onClick={openImportFolder}
          disabled={info?.modules.hf !== true}
          title="A Hugging Face model folder (config.json, safetensors, tokenizer) as a graph; or drop the folder on the canvas"
        >
          Import model folder…
        </button>
      </div>
      <div className="tb-group">
        <button className="icon" onClick={() => st.undo()} disabled={!canUndo} aria-label="Undo" title="Undo (Ctrl+Z)">
          ↶
        </button>
        <button className="icon" onClick={() => st.redo()} disabled={!canRedo} aria-label="Redo" title="Redo (Ctrl+Shift+Z)">
          ↷
        </button>
      </div>
      <div className="spacer" />
      <span className="ep-badge" title={info ? `Available: ${info.availableProviders.join(', ')}` : 'Engine not reached'}>
        {info ? info.executionProvider.toUpperCase() : '…'}
      </span>
      {running ? (
        <button className="danger" onClick={() => void cancelRun()} title="Cancel the run">
          ■ Cancel
        </button>
      ) : (
        <button
          className="primary"
          disabled={!runAvailable}
          onClick={() => void startRun()}
          title={runAvailable ? 'Run the graph (Ctrl+Enter)' : 'Run: not available yet (the run engine is not part of this build)'}
        >
          ▶ Run
        </button>
      )}
      <button
        className="icon"
        aria-label="Toggle theme"
        title="Light / dark"
        onClick={() => st.setTheme(theme === 'dark' ? 'light' : 'dark')}
      >
        {theme === 'dark' ? '☀' : '☾'}
      </button>
      <button className="icon" aria-label="Keyboard shortcuts" title="Shortcuts (?)" onClick={() => st.openDialog('help')}>
        ?
      </button>
      <input
        ref={openInput}
        type="file"
        accept=".json,application/json"
        hidden
        data-testid="open-file-input"
        onChange={(e) => {
          const f = e.target.files?.[0];
          e.target.value = '';
          if (f) void openGraph(f);
        }}
      />
      <input
        ref={importInput}
        type="file"
        accept=".onnx"
        hidden
        data-testid="import-file-input"
        onChange={(e) => {
          const f = e.target.files?.[0];
          e.target.value = '';
          if (f) void importOnnx(f);
        }}
      />
    </header>
  );
}

function StatusBar({ info }: { info: Result<'engine.info'> | null }) {
  const counts = useComposer((s) => `${s.nodes.length} nodes · ${s.edges.length} edges`);
  const errors = useComposer((s) => s.diagnostics.filter((d) => d.severity === 'error').length);
  const warnings = useComposer((s) => s.diagnostics.filter((d) => d.severity === 'warning').length);
  const note = useComposer((s) => s.validationNote);
  const savedAt = useComposer((s) => s.autosavedAt);
  const run = useComposer((s) => s.run);
  return (
    <footer className="statusbar">
      <span>{counts}</span>
      <span className={errors ? 'status-error' : 'status-ok'} data-testid="diagnostic-count">
        {note ?? (errors || warnings ? `${errors} errors · ${warnings} warnings` : '✓ valid')}
      </span>
      <ParamTotal />
      {run.status === 'running' && <span>Running…</span>}
      {run.status === 'done' && (
        <span>
          Last run {((run.totalMs ?? 0) / 1000).toFixed(2)} s · {run.computed.length} computed · {run.cached.length} cached
        </span>
      )}
      {run.status === 'error' && <span className="status-error">Last run failed</span>}
      <span className="spacer" />
      {savedAt && <span>Autosaved {new Date(savedAt).toLocaleTimeString()}</span>}
      <span data-testid="status-ep" title={info ? `Execution providers in this build: ${info.availableProviders.join(', ')}` : undefined}>
        Execution provider: <strong>{info ? info.executionProvider.toUpperCase() : '…'}</strong>
      </span>
      <span>{info ? (info.mode === 'electron' ? 'Desktop' : 'Browser mode') : 'Connecting…'}</span>
    </footer>
  );
}

/** Trainable / all parameters of the graph and the trainable share, as PEFT's print_trainable_parameters. */
function ParamTotal() {
  const counts = useComposer((s) => s.paramCounts);
  const empty = useComposer((s) => s.nodes.length === 0);
  if (!counts || empty) return null;
  const total = counts.total;
  const uncounted = counts.nodes.filter((n) => n.error).length;
  const exact = `trainable params: ${total.trainable.toLocaleString('en-US')} || all params: ${total.params.toLocaleString('en-US')} || trainable%: ${total.trainablePercent.toFixed(4)}`;
  return (
    <span data-testid="param-total" title={uncounted ? `${exact}\n${uncounted} node(s) could not be counted` : exact}>
      Trainable <strong className="mono">{formatCount(total.trainable)}</strong> / {formatCount(total.params)} params (
      {total.trainablePercent.toFixed(2)}%){uncounted ? ' *' : ''}
    </span>
  );
}

function EmptyState() {
  const empty = useComposer((s) => s.nodes.length === 0);
  if (!empty) return null;
  return (
    <div className="empty-state">
      <h2>Compose a vision-language model</h2>
      <p>Start from a template, drag parts from the palette, or double-click the canvas to search.</p>
      <button className="primary" onClick={() => composerStore.getState().openDialog('templates')}>
        Browse templates
      </button>
    </div>
  );
}

export function App() {
  const theme = useComposer((s) => s.theme);
  const dialog = useComposer((s) => s.dialog);
  const [info, setInfo] = useState<Result<'engine.info'> | null>(null);
  const [recovery, setRecovery] = useState<{ document: GraphDocumentWire; savedAt: string } | null>(null);

  useEffect(() => {
    const saved = localStorage.getItem(THEME_KEY);
    const preferDark = window.matchMedia?.('(prefers-color-scheme: dark)').matches;
    composerStore.getState().setTheme(saved === 'dark' || saved === 'light' ? saved : preferDark ? 'dark' : 'light');
    const stop = startBackgroundWork();
    const stopJobs = listenToJobs();
    const stopPorts = composerStore.subscribe((state, prev) => {
      if (state.nodes !== prev.nodes || state.catalog !== prev.catalog) refreshParamPorts();
    });
    void (async () => {
      setInfo(await loadEngineInfo());
      await loadCatalog();
      void refreshModels();
      const found = await recoverAutosave();
      // Only offer recovery while the user has not started on something else (e.g. opened a template meanwhile).
      if (found && found.document.nodes.length > 0 && composerStore.getState().revision === 0) setRecovery(found);
      void validateNow();
      void countParametersNow();
    })();
    return () => {
      stop();
      stopJobs();
      stopPorts();
    };
  }, []);

  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem(THEME_KEY, theme);
  }, [theme]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => handleShortcut(e);
    const onCopy = (e: ClipboardEvent) => {
      if (isField(e.target)) return;
      const payload = composerStore.getState().copy();
      if (!payload || !e.clipboardData) return;
      e.clipboardData.setData('text/plain', JSON.stringify(payload));
      e.preventDefault();
    };
    const onPaste = (e: ClipboardEvent) => {
      if (isField(e.target)) return;
      const payload = parseClipboard(e.clipboardData?.getData('text/plain') ?? '');
      if (!payload) return;
      e.preventDefault();
      composerStore.getState().paste(payload);
    };
    window.addEventListener('keydown', onKey);
    window.addEventListener('copy', onCopy);
    window.addEventListener('paste', onPaste);
    return () => {
      window.removeEventListener('keydown', onKey);
      window.removeEventListener('copy', onCopy);
      window.removeEventListener('paste', onPaste);
    };
  }, []);

  return (
    <ReactFlowProvider>
      <div className="app">
        <Toolbar info={info} />
        <div className="workspace">
          <Palette />
          <main className="canvas-wrap">
            <div className="canvas-area">
              <Canvas />
              <EmptyState />
            </div>
            <Dock info={info} />
          </main>
          <Inspector />
        </div>
        <StatusBar info={info} />
        {dialog === 'templates' && <TemplatesGallery />}
        {dialog === 'help' && <ShortcutsHelp />}
        {dialog === 'import-folder' && <ImportFolderDialog />}
        {recovery && <RecoveryPrompt found={recovery} onDone={() => setRecovery(null)} />}
        <CanvasSearch />
        <Toasts />
      </div>
    </ReactFlowProvider>
  );
}

function isField(t: EventTarget | null): boolean {
  return t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
}
