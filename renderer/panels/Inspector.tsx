// Right sidebar: the selected node's params (with their docs), freeze toggle, adapters, "Replace with…" and the
// doc card that explains the component.

import { useRef, useState, type CSSProperties } from 'react';
import { useShallow } from 'zustand/react/shallow';
import type { AdapterMethod, ParamInfoWire } from '../../electron/host/contract.js';
import { readImage } from '../app/jobs.js';
import { embeddedLabel } from '../canvas/ComposerNodeView.js';
import { FAMILY_LABEL, familyColor } from '../canvas/theme.js';
import { composerStore, useComposer } from '../store/store.js';

const ADAPTER_METHODS: readonly AdapterMethod[] = ['lora', 'qlora', 'prefix', 'prompt', 'ptuning', 'ptuning-v2', 'adapter', 'ia3', 'lora-moe'];

function ParamField({ nodeId, param, value }: { nodeId: string; param: ParamInfoWire; value: unknown }) {
  const set = (v: unknown) => composerStore.getState().setParam(nodeId, param.name, v);
  const current = value ?? param.default;
  let input;
  if (param.name === 'base64') {
    // Not a <label>: its buttons would all answer a click on the thumbnail.
    return (
      <div className="field">
        <span className="field-name">embedded image</span>
        <EmbeddedImageField nodeId={nodeId} value={typeof current === 'string' ? current : ''} onChange={set} />
        {param.doc && <span className="field-doc">{param.doc}</span>}
      </div>
    );
  }
  if (param.kind === 'bool') {
    input = <input type="checkbox" checked={current === true} onChange={(e) => set(e.target.checked)} />;
  } else if (param.kind === 'enum') {
    input = (
      <select value={String(current)} onChange={(e) => set(e.target.value)}>
        {(param.options ?? []).map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    );
  } else if ((param.kind === 'int' || param.kind === 'float') && param.options?.length) {
    // A number that also accepts words such as 'auto'.
    input = (
      <input
        type="text"
        value={String(current)}
        onChange={(e) => {
          const v = e.target.value;
          set(param.options?.includes(v) ? v : v === '' ? v : Number.isNaN(Number(v)) ? v : Number(v));
        }}
      />
    );
  } else if (param.kind === 'int' || param.kind === 'float') {
    input = (
      <input
        type="number"
        value={typeof current === 'number' ? current : ''}
        min={param.min}
        max={param.max}
        step={param.kind === 'int' ? 1 : 'any'}
        onChange={(e) => set(e.target.value === '' ? null : Number(e.target.value))}
      />
    );
  } else if (param.kind === 'json') {
    input = <JsonField value={current} onCommit={set} />;
  } else {
    input = <input type="text" value={typeof current === 'string' ? current : ''} onChange={(e) => set(e.target.value)} />;
  }
  return (
    <label className="field">
      <span className="field-name">
        {param.name}
        {param.kind !== 'string' && <span className="field-kind">{param.kind}</span>}
      </span>
      {input}
      {param.doc && <span className="field-doc">{param.doc}</span>}
    </label>
  );
}

/** The image a node carries inside the graph file: a thumbnail and its size, to replace or remove, never its bytes as text. */
function EmbeddedImageField({ nodeId, value, onChange }: { nodeId: string; value: string; onChange: (v: string) => void }) {
  const [error, setError] = useState<string | null>(null);
  const picker = useRef<HTMLInputElement>(null);
  const mime = value.startsWith('/9j/') ? 'image/jpeg' : value.startsWith('UklGR') ? 'image/webp' : 'image/png';
  const replace = async (file: File | undefined) => {
    if (!file) return;
    try {
      const picked = await readImage(file);
      setError(null);
      composerStore.getState().setParam(nodeId, 'path', '');
      onChange(picked.base64);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <div className="embedded-image" data-testid="embedded-image">
      {value ? <img src={`data:${mime};base64,${value}`} alt="embedded image" /> : <span className="muted small">none</span>}
      <div className="embedded-image-actions">
        {value && <span className="muted small">{embeddedLabel(value)}</span>}
        <button type="button" onClick={() => picker.current?.click()}>
          {value ? 'Replace…' : 'Embed…'}
        </button>
        <input ref={picker} type="file" accept="image/*" hidden onChange={(e) => void replace(e.target.files?.[0])} />
        {value && (
          <button type="button" onClick={() => onChange('')}>
            Remove
          </button>
        )}
      </div>
      {error && <span className="field-error" role="alert">{error}</span>}
    </div>
  );
}

function JsonField({ value, onCommit }: { value: unknown; onCommit: (v: unknown) => void }) {
  const [text, setText] = useState(JSON.stringify(value));
  const [bad, setBad] = useState(false);
  return (
    <textarea
      className={bad ? 'bad' : ''}
      value={text}
      rows={2}
      onChange={(e) => setText(e.target.value)}
      onBlur={() => {
        try {
          onCommit(JSON.parse(text));
          setBad(false);
        } catch {
          setBad(true);
        }
      }}
    />
  );
}

export function Inspector() {
  const selected = useComposer(useShallow((s) => s.nodes.filter((n) => n.selected).map((n) => n.id)));
  const node = useComposer((s) => (selected.length === 1 ? s.nodes.find((n) => n.id === selected[0]) : undefined));
  const info = useComposer((s) => (node ? s.catalog[node.data.type] : undefined));
  const catalogList = useComposer((s) => s.catalogList);
  const problems = useComposer(useShallow((s) => (node ? s.diagnostics.filter((d) => d.nodeId === node.id) : [])));
  const [adapterMethod, setAdapterMethod] = useState<AdapterMethod>('lora');
  const [replaceOpen, setReplaceOpen] = useState(false);

  if (selected.length > 1) {
    const st = composerStore.getState();
    return (
      <aside className="inspector" aria-label="Inspector">
        <div className="panel-title">{selected.length} nodes selected</div>
        <div className="inspector-actions">
          <button onClick={() => st.setFrozen(selected, true)}>Freeze all</button>
          <button onClick={() => st.setFrozen(selected, false)}>Unfreeze all</button>
          <button className="danger" onClick={() => st.deleteSelection()}>
            Delete
          </button>
        </div>
      </aside>
    );
  }
  if (!node) {
    return (
      <aside className="inspector" aria-label="Inspector">
        <div className="panel-title">Inspector</div>
        <div className="empty-note">Select a node to edit its parameters, freeze it or attach adapters.</div>
      </aside>
    );
  }
  const st = composerStore.getState();
  const replacements = catalogList.filter((t) => t.type !== node.data.type && (!info || t.family === info.family));

  return (
    <aside className="inspector" aria-label="Inspector" style={{ '--family': familyColor(info?.family) } as CSSProperties}>
      <div className="inspector-head">
        <span className="family-pill">{FAMILY_LABEL[info?.family ?? ''] ?? 'Unknown'}</span>
        <h2>{info?.title ?? node.data.type}</h2>
        <div className="mono muted">
          {node.id} · {node.data.type} v{node.data.typeVersion}
        </div>
      </div>

      {problems.length > 0 && (
        <ul className="problems">
          {problems.map((p, i) => (
            <li key={i} className={p.severity}>
              <strong>{p.port ? `${p.port}: ` : ''}</strong>
              {p.message}
              {p.fix && <div className="fix">Fix: {p.fix}</div>}
            </li>
          ))}
        </ul>
      )}

      <section className="inspector-section">
        <label className="toggle">
          <input
            type="checkbox"
            checked={node.data.frozen}
            onChange={(e) => st.setFrozen([node.id], e.target.checked)}
            aria-label="Frozen"
          />
          <span className="toggle-track" />
          <span>
            <strong>Frozen</strong>
            <span className="field-doc"> weights stay fixed during training</span>
          </span>
        </label>
        <div className="replace">
          <button onClick={() => setReplaceOpen(!replaceOpen)} disabled={replacements.length === 0}>
            Replace with…
          </button>
          {replaceOpen && (
            <div className="menu" role="menu">
              {replacements.map((t) => (
                <button
                  key={t.type}
                  role="menuitem"
                  onClick={() => {
                    const hadWeights = node.data.weights !== undefined;
                    const dropped = st.replaceNode(node.id, t.type);
                    setReplaceOpen(false);
                    const what = dropped.length ? `Replaced; dropped connections: ${dropped.join(', ')}` : `Replaced with ${t.title}; connections kept`;
                    st.toast('info', hadWeights ? `${what}. Its weights file belonged to the old type: the new one starts freshly initialised.` : what);
                  }}
                >
                  {t.title}
                  <span className="muted">{t.type}</span>
                </button>
              ))}
            </div>
          )}
        </div>
      </section>

      {info && info.params.length > 0 && (
        <section className="inspector-section">
          <h3>Parameters</h3>
          {info.params.map((p) => (
            <ParamField key={p.name} nodeId={node.id} param={p} value={node.data.params[p.name]} />
          ))}
        </section>
      )}

      <section className="inspector-section">
        <h3>Adapters</h3>
        {node.data.adapters.length === 0 && <div className="muted small">No adapters. Attach one to fine-tune this node cheaply.</div>}
        {node.data.adapters.map((a) => (
          <div key={a.id} className="adapter-row">
            <span className="chip">{a.method.toUpperCase()}</span>
            <span className="mono">{a.id}</span>
            <button className="icon" aria-label={`Remove ${a.id}`} onClick={() => st.removeAdapter(node.id, a.id)}>
              ✕
            </button>
          </div>
        ))}
        <div className="adapter-add">
          <select value={adapterMethod} onChange={(e) => setAdapterMethod(ADAPTER_METHODS.find((m) => m === e.target.value) ?? 'lora')} aria-label="Adapter method">
            {ADAPTER_METHODS.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
          <button onClick={() => st.addAdapter(node.id, adapterMethod)}>Add adapter</button>
        </div>
      </section>

      {info && (
        <section className="inspector-section doc-card">
          <h3>About</h3>
          <p>{info.doc.summary}</p>
          {info.doc.formula && <pre className="formula">{info.doc.formula}</pre>}
          {info.doc.details && <p className="muted">{info.doc.details}</p>}
          {info.doc.usedBy.length > 0 && (
            <div className="used-by">
              Used by:{' '}
              {info.doc.usedBy.map((u) => (
                <span key={u} className="chip subtle">
                  {u}
                </span>
              ))}
            </div>
          )}
        </section>
      )}
    </aside>
  );
}
