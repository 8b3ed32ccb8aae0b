// Modal and floating UI: templates gallery, shortcut help, canvas search, recovery prompt, toasts.

import { useEffect, useMemo, useRef, useState } from 'react';
import type { GraphDocumentWire, Result } from '../../electron/host/contract.js';
import { listTemplates, openTemplate, showDocument, discardAutosave } from '../app/actions.js';
import { SHORTCUTS } from '../app/shortcuts.js';
import { FAMILY_LABEL, familyColor } from '../canvas/theme.js';
import { composerStore, useComposer } from '../store/store.js';
import { matchesQuery } from './Palette.js';

export function Modal({ title, onClose, children, wide }: { title: string; onClose: () => void; children: React.ReactNode; wide?: boolean }) {
  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className={`modal${wide ? ' wide' : ''}`} role="dialog" aria-label={title}>
        <div className="modal-head">
          <h2>{title}</h2>
          <button className="icon" onClick={onClose} aria-label="Close">
            ✕
          </button>
        </div>
        <div className="modal-body">{children}</div>
      </div>
    </div>
  );
}

export function TemplatesGallery() {
  const [templates, setTemplates] = useState<Result<'templates.list'>['templates'] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    listTemplates().then(setTemplates, (e: Error) => setError(e.message));
  }, []);
  const close = () => composerStore.getState().openDialog(null);
  return (
    <Modal title="Templates" onClose={close} wide>
      {error && <div className="empty-note error">{error}</div>}
      {!error && !templates && <div className="empty-note">Loading templates…</div>}
      {templates && templates.length === 0 && <div className="empty-note">No templates found in graphs/.</div>}
      <div className="template-grid">
        {templates?.map((t) => (
          <button key={t.id} className="template-card" onClick={() => void openTemplate(t.id)} data-template={t.id}>
            <div className="template-name">{t.name}</div>
            <div className="muted small">
              {t.nodeCount} nodes · <span className="mono">{t.id}</span>
            </div>
            <div className="chips">
              {t.types.slice(0, 6).map((ty) => (
                <span key={ty} className="chip subtle">
                  {ty.split('.').pop()}
                </span>
              ))}
            </div>
          </button>
        ))}
      </div>
    </Modal>
  );
}

export function ShortcutsHelp() {
  return (
    <Modal title="Keyboard shortcuts" onClose={() => composerStore.getState().openDialog(null)}>
      <table className="shortcuts">
        <tbody>
          {SHORTCUTS.map((s) => (
            <tr key={s.label}>
              <td>
                {s.keys.map((k) => (
                  <kbd key={k}>{k}</kbd>
                ))}
              </td>
              <td>{s.label}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Modal>
  );
}

export function CanvasSearch() {
  const search = useComposer((s) => s.search);
  const types = useComposer((s) => s.catalogList);
  const [query, setQuery] = useState('');
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  const results = useMemo(() => types.filter((t) => matchesQuery(t, query)).slice(0, 12), [types, query]);
  useEffect(() => {
    setQuery('');
    setActive(0);
    input.current?.focus();
  }, [search]);
  if (!search) return null;
  const st = composerStore.getState();
  const close = () => st.openSearch(null);
  const add = (type: string) => {
    st.addNode(type, { x: search.flow.x - 110, y: search.flow.y - 30 });
    close();
  };
  return (
    <div className="search-backdrop" onMouseDown={(e) => e.target === e.currentTarget && close()}>
      <div className="search-pop" style={{ left: Math.min(search.screen.x, window.innerWidth - 380), top: Math.min(search.screen.y, window.innerHeight - 420) }}>
        <input
          ref={input}
          className="search-input"
          placeholder="Add a node…"
          value={query}
          aria-label="Add a node"
          onChange={(e) => {
            setQuery(e.target.value);
            setActive(0);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Escape') close();
            else if (e.key === 'ArrowDown') setActive((a) => Math.min(a + 1, results.length - 1));
            else if (e.key === 'ArrowUp') setActive((a) => Math.max(a - 1, 0));
            else if (e.key === 'Enter' && results[active]) add(results[active].type);
          }}
        />
        <div className="search-results">
          {results.length === 0 && <div className="empty-note">{types.length ? 'No match' : 'Node catalogue not loaded'}</div>}
          {results.map((t, i) => (
            <button key={t.type} className={`search-item${i === active ? ' active' : ''}`} onMouseEnter={() => setActive(i)} onClick={() => add(t.type)}>
              <span className="cnode-dot" style={{ background: familyColor(t.family) }} />
              <span>{t.title}</span>
              <span className="muted small">{FAMILY_LABEL[t.family] ?? t.family}</span>
            </button>
          ))}
        </div>
      </div>
    </div>
  );
}

export function RecoveryPrompt({ found, onDone }: { found: { document: GraphDocumentWire; savedAt: string }; onDone: () => void }) {
  const when = new Date(found.savedAt).toLocaleString();
  return (
    <Modal title="Recover unsaved work?" onClose={onDone}>
      <p>
        Composer found an autosaved graph “{found.document.name}” ({found.document.nodes.length} nodes) from {when}, which was not
        saved to a file.
      </p>
      <div className="modal-actions">
        <button
          onClick={() => {
            void discardAutosave();
            onDone();
          }}
        >
          Discard
        </button>
        <button
          className="primary"
          onClick={() => {
            showDocument(found.document);
            composerStore.getState().rename(found.document.name ?? 'untitled');
            onDone();
          }}
        >
          Recover
        </button>
      </div>
    </Modal>
  );
}

export function Toasts() {
  const toasts = useComposer((s) => s.toasts);
  useEffect(() => {
    if (toasts.length === 0) return;
    const last = toasts[toasts.length - 1];
    const t = setTimeout(() => composerStore.getState().dismissToast(last.id), last.kind === 'error' ? 9000 : 3500);
    return () => clearTimeout(t);
  }, [toasts]);
  return (
    <div className="toasts" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} className={`toast ${t.kind}`} role={t.kind === 'error' ? 'alert' : 'status'}>
          <span>{t.message}</span>
          <button className="icon" onClick={() => composerStore.getState().dismissToast(t.id)} aria-label="Dismiss">
            ✕
          </button>
        </div>
      ))}
    </div>
  );
}
