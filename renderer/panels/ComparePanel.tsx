// Compare panel: swap one node for alternatives of the same family and run every variant side by side on the same
// inputs (or a small image set): output, latency, total and trainable parameters per variant.

import { useMemo, useRef, useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import type { CompareDataset } from '../../electron/host/contract.js';
import { cancelCompare, readImage, startCompare } from '../app/jobs.js';
import { cellKey, formatCount, isActive, type PickedImage } from '../store/jobs.js';
import { composerStore, useComposer } from '../store/store.js';
import { DatasetResults, DatasetSetup } from './CompareDataset.js';

const COMPARABLE = new Set(['encoder', 'input-projector', 'llm', 'output-projector', 'generator']);

export function ComparePanel({ available, recipes = [], browser = true }: { available: boolean; recipes?: string[]; browser?: boolean }) {
  const compare = useComposer((s) => s.compare);
  const catalog = useComposer((s) => s.catalog);
  const catalogList = useComposer((s) => s.catalogList);
  const candidatesNodes = useComposer(
    useShallow((s) => s.nodes.filter((n) => COMPARABLE.has(s.catalog[n.data.type]?.family ?? '')).map((n) => `${n.id}|${n.data.type}`)),
  );
  const selectedId = useComposer((s) => s.nodes.find((n) => n.selected)?.id);
  const runImage = useComposer((s) => s.runImage);
  const [chosenNode, setChosenNode] = useState<string | null>(null);
  const [picked, setPicked] = useState<Record<string, boolean>>({});
  const [images, setImages] = useState<PickedImage[]>([]);
  const fileInput = useRef<HTMLInputElement>(null);
  const [mode, setMode] = useState<'images' | 'dataset'>('images');
  const [dataset, setDataset] = useState<CompareDataset | null>({ name: 'shapes', limit: 30, reinit: false });

  const nodes = candidatesNodes.map((x) => {
    const [id, type] = x.split('|');
    return { id, type };
  });
  const preferred = nodes.find((n) => n.id === selectedId) ?? nodes.find((n) => catalog[n.type]?.family === 'input-projector') ?? nodes[0];
  const nodeId = chosenNode && nodes.some((n) => n.id === chosenNode) ? chosenNode : preferred?.id;
  const node = nodes.find((n) => n.id === nodeId);
  const family = node ? catalog[node.type]?.family : undefined;
  const alternatives = useMemo(
    () => catalogList.filter((t) => t.family === family && t.type !== node?.type),
    [catalogList, family, node?.type],
  );
  const candidates = alternatives.filter((t) => picked[`${nodeId}|${t.type}`]).map((t) => t.type);
  const active = isActive(compare.status);

  const addImages = async (files: FileList | null) => {
    if (!files) return;
    try {
      const read = await Promise.all([...files].map(readImage));
      setImages((prev) => [...prev, ...read].slice(0, 32));
    } catch (e) {
      composerStore.getState().toast('error', (e as Error).message);
    }
  };

  return (
    <div className="compare-panel">
      <div className="compare-setup">
        <div className="segmented" role="radiogroup" aria-label="Compare on">
          {(['images', 'dataset'] as const).map((m) => (
            <button key={m} role="radio" aria-checked={mode === m} className={mode === m ? 'active' : ''} onClick={() => setMode(m)}>
              {m === 'images' ? 'Images' : 'Dataset'}
            </button>
          ))}
        </div>
        <label className="field">
          <span className="field-name">Node</span>
          <select value={nodeId ?? ''} onChange={(e) => setChosenNode(e.target.value)} aria-label="Node to compare">
            {nodes.length === 0 && <option value="">No model node in the graph</option>}
            {nodes.map((n) => (
              <option key={n.id} value={n.id}>
                {n.id} ({catalog[n.type]?.title ?? n.type})
              </option>
            ))}
          </select>
        </label>
        <fieldset className="field candidates">
          <legend className="field-name">Alternatives</legend>
          {alternatives.length === 0 && <span className="muted small">No other type in this family.</span>}
          {alternatives.map((t) => (
            <label key={t.type} className="check">
              <input
                type="checkbox"
                checked={!!picked[`${nodeId}|${t.type}`]}
                onChange={(e) => setPicked({ ...picked, [`${nodeId}|${t.type}`]: e.target.checked })}
              />
              {t.title}
            </label>
          ))}
        </fieldset>
        {mode === 'dataset' && <DatasetSetup recipes={recipes} browser={browser} onChange={setDataset} />}
        {mode === 'images' && <div className="field">
          <span className="field-name">Images</span>
          <div className="image-set">
            {images.map((im, i) => (
              <img key={i} src={im.dataUrl} alt={im.name} title={im.name} />
            ))}
            {images.length === 0 && <span className="muted small">{runImage ? `The run image (${runImage.name})` : 'The run image'}</span>}
          </div>
          <div className="row">
            <button onClick={() => fileInput.current?.click()}>Add images…</button>
            {images.length > 0 && <button onClick={() => setImages([])}>Clear</button>}
          </div>
          <input ref={fileInput} type="file" accept="image/*" multiple hidden data-testid="compare-images-input" onChange={(e) => {
            void addImages(e.target.files);
            e.target.value = '';
          }} />
        </div>}
        <div className="run-buttons">
          <button
            className="primary"
            disabled={!available || !nodeId || candidates.length === 0 || active || (mode === 'dataset' && !dataset)}
            title={available ? (mode === 'dataset' ? 'Score every variant on the dataset' : 'Run every variant') : 'Compare: not available yet (the compare engine is not part of this build)'}
            onClick={() => nodeId && void startCompare(nodeId, candidates, images, mode === 'dataset' && dataset ? dataset : undefined)}
          >
            Compare
          </button>
          <button disabled={!active || !compare.id} onClick={() => void cancelCompare()}>
            Cancel
          </button>
        </div>
      </div>
      <div className="compare-results">
        {compare.status === 'idle' && <div className="muted">Pick a node and at least one alternative, then Compare.</div>}
        {(compare.status === 'error' || compare.status === 'cancelled') && (
          <div className={compare.status === 'error' ? 'status-error' : 'muted'} role={compare.status === 'error' ? 'alert' : undefined}>
            {compare.message}
          </div>
        )}
        {active && (
          <div className="muted small">
            <span className="run-ring inline" /> {compare.dataset ? 'Scoring variants' : 'Running variants'}… {compare.done}/{compare.total || '?'}
            {compare.dataset && compare.message && <span className="mono"> · {compare.message}</span>}
          </div>
        )}
        {compare.dataset && compare.variants.length > 0 && compare.status !== 'idle' && <DatasetResults compare={compare} />}
        {!compare.dataset && compare.variants.length > 0 && compare.status !== 'idle' && (
          <table className="compare-table" data-testid="compare-table">
            <thead>
              <tr>
                <th>Variant ({compare.nodeId})</th>
                {compare.imageNames.map((n, i) => (
                  <th key={i}>{n}</th>
                ))}
                <th>Latency</th>
                <th>Params</th>
                <th>Trainable</th>
              </tr>
            </thead>
            <tbody>
              {compare.variants.map((v, vi) => {
                const cells = compare.imageNames.map((_, ii) => compare.cells[cellKey(vi, ii)]);
                const lat = cells.map((c) => c?.latencyMs).filter((x): x is number => x !== undefined);
                return (
                  <tr key={vi} data-testid={`compare-row-${vi}`}>
                    <td>
                      <strong>{catalog[v.type]?.title ?? v.type}</strong>
                      <div className="muted small mono">{vi === 0 ? 'current' : v.type}</div>
                      {v.notes && (
                        <div className="compare-note muted small" title={v.notes}>
                          {v.notes.split('\n').map((line, k) => (
                            <div key={k}>{line}</div>
                          ))}
                        </div>
                      )}
                    </td>
                    {cells.map((c, ii) => (
                      <td key={ii} className="compare-cell">
                        {!c && <span className="muted">…</span>}
                        {c?.text !== undefined && (
                          <span className="compare-text" title={c.text}>
                            {c.text || <span className="muted">(empty)</span>}
                          </span>
                        )}
                        {c?.imageDataUrl && <img src={c.imageDataUrl} alt="" />}
                        {c?.message && <span className="status-error small">{c.message}</span>}
                      </td>
                    ))}
                    <td className="mono">{lat.length ? `${(lat.reduce((a, b) => a + b, 0) / lat.length).toFixed(0)} ms` : '—'}</td>
                    <td className="mono">{formatCount(v.totalParams)}</td>
                    <td className="mono">{formatCount(v.trainableParams)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}
