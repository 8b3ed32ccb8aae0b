// The bottom dock under the canvas: Run, Compare, Train and Export as tabs; collapsible.

import { useState, type PointerEvent } from 'react';
import type { Result } from '../../electron/host/contract.js';
import type { Panel } from '../store/jobs.js';
import { composerStore, useComposer } from '../store/store.js';
import { ComparePanel } from './ComparePanel.js';
import { ExportPanel } from './ExportPanel.js';
import { ModelsPanel } from './ModelsPanel.js';
import { RunPanel } from './RunPanel.js';
import { TrainPanel } from './TrainPanel.js';

/** `module`: the engine part a tab needs (engine.info's modules), when it is not named like the tab. */
const TABS: Array<{ id: Panel; title: string; module?: string }> = [
  { id: 'run', title: 'Run' },
  { id: 'compare', title: 'Compare' },
  { id: 'train', title: 'Train' },
  { id: 'export', title: 'Export' },
  { id: 'models', title: 'Models', module: 'hf' },
];

export function Dock({ info }: { info: Result<'engine.info'> | null }) {
  const panel = useComposer((s) => s.panel);
  const runStatus = useComposer((s) => s.run.status);
  const trainStatus = useComposer((s) => s.train.status);
  const st = composerStore.getState();
  const [height, setHeight] = useState(300);
  const has = (m: string) => info?.modules[m] === true;
  // Drag the top edge to trade canvas for panel space.
  const startResize = (e: PointerEvent<HTMLDivElement>) => {
    const startY = e.clientY;
    const startHeight = height;
    const move = (ev: globalThis.PointerEvent) => setHeight(Math.max(160, Math.min(window.innerHeight - 220, startHeight + startY - ev.clientY)));
    const up = () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
  };
  const busy: Partial<Record<Panel, boolean>> = {
    run: runStatus === 'running' || runStatus === 'starting',
    train: trainStatus === 'running' || trainStatus === 'paused',
  };
  return (
    <section className={`dock${panel ? ' open' : ''}`} aria-label="Panels" style={panel ? { height } : undefined}>
      {panel && <div className="dock-resize" onPointerDown={startResize} title="Drag to resize" aria-hidden />}
      <div className="dock-tabs" role="tablist">
        {TABS.map((t) => (
          <button
            key={t.id}
            role="tab"
            aria-selected={panel === t.id}
            className={`dock-tab${panel === t.id ? ' active' : ''}`}
            onClick={() => st.setPanel(panel === t.id ? null : t.id)}
          >
            {t.title}
            {busy[t.id] && <span className="run-ring inline" />}
            {t.id !== 'run' && info && !has(t.module ?? t.id) && <span className="muted small"> (not available yet)</span>}
          </button>
        ))}
        <span className="spacer" />
        <button className="icon" aria-label={panel ? 'Collapse panels' : 'Expand panels'} onClick={() => st.setPanel(panel ? null : 'run')}>
          {panel ? '▾' : '▴'}
        </button>
      </div>
      {panel && (
        <div className="dock-body" role="tabpanel" aria-label={TABS.find((t) => t.id === panel)?.title}>
          {panel === 'run' && <RunPanel runAvailable={has('run')} />}
          {panel === 'compare' && <ComparePanel available={has('compare')} recipes={info?.recipes ?? []} browser={info?.mode !== 'electron'} />}
          {panel === 'train' && <TrainPanel available={has('train')} browser={info?.mode !== 'electron'} recipes={info?.recipes ?? []} />}
          {panel === 'export' && <ExportPanel available={has('export')} electron={info?.mode === 'electron'} />}
          {panel === 'models' && <ModelsPanel available={has('hf')} />}
        </div>
      )}
    </section>
  );
}
