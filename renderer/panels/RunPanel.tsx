// Run panel: the image and prompt of the next run, Run / Cancel, what is running now, and the results (text and
// image outputs per output node).

import { useEffect, useRef, useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { cancelRun, startRun, takeImageFile } from '../app/jobs.js';
import { isActive } from '../store/jobs.js';
import { composerStore, useComposer } from '../store/store.js';

export function ImagePicker({ testId = 'run-image-input' }: { testId?: string }) {
  const image = useComposer((s) => s.runImage);
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  return (
    <div
      className={`image-drop${over ? ' over' : ''}`}
      onDragOver={(e) => {
        if (!e.dataTransfer.types.includes('Files')) return;
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        const f = e.dataTransfer.files?.[0];
        if (f) void takeImageFile(f);
      }}
    >
      {image ? (
        <img src={image.dataUrl} alt={image.name} className="image-drop-thumb" />
      ) : (
        <div className="image-drop-empty" aria-hidden>
          ⬚
        </div>
      )}
      <div className="image-drop-text">
        <strong>{image ? image.name : 'No image'}</strong>
        <span className="muted small">Drop an image here or on the canvas</span>
        <div className="row">
          <button onClick={() => input.current?.click()}>{image ? 'Change…' : 'Pick image…'}</button>
          {image && (
            <button className="icon" aria-label="Remove image" onClick={() => composerStore.getState().setRunImage(null)}>
              ✕
            </button>
          )}
        </div>
      </div>
      <input
        ref={input}
        type="file"
        accept="image/*"
        hidden
        data-testid={testId}
        onChange={(e) => {
          const f = e.target.files?.[0];
          e.target.value = '';
          if (f) void takeImageFile(f);
        }}
      />
    </div>
  );
}

function Elapsed({ since }: { since: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 200);
    return () => clearInterval(t);
  }, []);
  return <span className="mono">{((now - since) / 1000).toFixed(1)} s</span>;
}

export function RunPanel({ runAvailable }: { runAvailable: boolean }) {
  const run = useComposer((s) => s.run);
  const prompt = useComposer((s) => s.prompt);
  const textNode = useComposer((s) => s.nodes.find((n) => n.data.type === 'io.text'));
  const hasImageNode = useComposer((s) => s.nodes.some((n) => n.data.type === 'io.image'));
  const running = useComposer(
    useShallow((s) => Object.entries(s.run.nodes).filter(([, v]) => v.status === 'running').map(([k]) => k)),
  );
  const active = isActive(run.status);
  const defaultPrompt = typeof textNode?.data.params.text === 'string' ? textNode.data.params.text : '';
  const st = composerStore.getState();

  return (
    <div className="run-panel">
      <div className="run-inputs">
        {hasImageNode ? <ImagePicker /> : <div className="muted small">This graph has no Image node.</div>}
        <label className="field grow">
          <span className="field-name">
            Prompt{textNode && <span className="field-kind">→ {textNode.id}</span>}
          </span>
          <textarea
            rows={3}
            value={prompt}
            disabled={!textNode}
            placeholder={textNode ? defaultPrompt || 'Type a prompt' : 'This graph has no Text (io.text) node'}
            aria-label="Prompt"
            onChange={(e) => st.setPrompt(e.target.value)}
          />
          <span className="field-doc">Empty: the Text node's own text. Ctrl+Enter runs.</span>
        </label>
        <div className="run-buttons">
          <button
            className="primary"
            onClick={() => void startRun()}
            disabled={!runAvailable || active}
            title={runAvailable ? 'Run (Ctrl+Enter)' : 'Run: not available yet'}
            data-testid="panel-run"
          >
            ▶ Run
          </button>
          <button onClick={() => void cancelRun()} disabled={!active || !run.id}>
            Cancel
          </button>
        </div>
      </div>
      <div className="run-status" data-testid="run-status" data-status={run.status}>
        {run.status === 'idle' && <span className="muted">Not run yet.</span>}
        {active && (
          <span>
            <span className="run-ring inline" /> Running {running.length ? <span className="mono">{running.join(', ')}</span> : '…'}{' '}
            {run.startedAt && <Elapsed since={run.startedAt} />}
          </span>
        )}
        {run.status === 'done' && (
          <span className="status-ok">
            ✓ Done in <span className="mono">{((run.totalMs ?? 0) / 1000).toFixed(2)} s</span> · {run.computed.length} computed ·{' '}
            {run.cached.length} from the cache
          </span>
        )}
        {run.status === 'cancelled' && <span className="muted">Cancelled.</span>}
        {run.status === 'error' && (
          <span className="status-error" role="alert">
            {run.message}
          </span>
        )}
      </div>
      {run.results.length > 0 && (
        <div className="run-results" data-testid="run-results">
          {run.results.map((r) => (
            <div key={r.node} className="run-result">
              <div className="muted small mono">{r.node}</div>
              {r.text !== undefined && <div className="run-result-text">{r.text || <span className="muted">(empty text)</span>}</div>}
              {r.imageDataUrl && <img className="run-result-image" src={r.imageDataUrl} alt={`output of ${r.node}`} />}
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
