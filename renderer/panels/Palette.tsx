// Left sidebar: every node type by family, searchable; drag onto the canvas or click to add at the centre.

import { useReactFlow } from '@xyflow/react';
import { useMemo, useState, type CSSProperties } from 'react';
import type { NodeTypeInfoWire } from '../../electron/host/contract.js';
import { openImportFolder } from '../app/models.js';
import { PALETTE_MIME } from '../canvas/Canvas.js';
import { FAMILY_LABEL, FAMILY_ORDER, familyColor } from '../canvas/theme.js';
import { composerStore, useComposer } from '../store/store.js';

export function matchesQuery(t: NodeTypeInfoWire, query: string): boolean {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  return [t.title, t.type, t.family, ...t.aliases, t.doc.summary].some((s) => s.toLowerCase().includes(q));
}

export function groupByFamily(types: NodeTypeInfoWire[]): Array<[string, NodeTypeInfoWire[]]> {
  const groups = new Map<string, NodeTypeInfoWire[]>();
  for (const t of types) groups.set(t.family, [...(groups.get(t.family) ?? []), t]);
  const rank = (f: string) => (FAMILY_ORDER.indexOf(f) + 100) % 100;
  return [...groups.entries()].sort((a, b) => rank(a[0]) - rank(b[0]));
}

export function Palette() {
  const types = useComposer((s) => s.catalogList);
  const error = useComposer((s) => s.catalogError);
  const [query, setQuery] = useState('');
  const flow = useReactFlow();
  const groups = useMemo(() => groupByFamily(types.filter((t) => matchesQuery(t, query))), [types, query]);

  const addAtCentre = (type: string) => {
    const rect = document.querySelector('.canvas')?.getBoundingClientRect();
    const centre = rect ? { x: rect.left + rect.width / 2, y: rect.top + rect.height / 2 } : { x: 400, y: 300 };
    const at = flow.screenToFlowPosition(centre);
    composerStore.getState().addNode(type, { x: at.x - 110, y: at.y - 40 });
  };

  return (
    <aside className="palette" aria-label="Node palette">
      <div className="panel-title">Nodes</div>
      <input
        className="search-input"
        placeholder="Search nodes…"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        aria-label="Search nodes"
      />
      <button className="palette-import" onClick={openImportFolder} title="A Hugging Face model folder as nodes (or drop the folder on the canvas)">
        <span aria-hidden>⇪</span> Import model folder…
      </button>
      <div className="palette-list">
        {error && <div className="empty-note error">Node catalogue unavailable: {error}</div>}
        {!error && types.length === 0 && <div className="empty-note">Loading node types…</div>}
        {!error && types.length > 0 && groups.length === 0 && <div className="empty-note">No node matches “{query}”.</div>}
        {groups.map(([family, items]) => (
          <section key={family} className="palette-group">
            <h4 style={{ '--family': familyColor(family) } as CSSProperties}>
              <span className="cnode-dot" /> {FAMILY_LABEL[family] ?? family}
            </h4>
            {items.map((t) => (
              <button
                key={t.type}
                className="palette-item"
                draggable
                onDragStart={(e) => {
                  e.dataTransfer.setData(PALETTE_MIME, t.type);
                  e.dataTransfer.effectAllowed = 'copy';
                }}
                onClick={() => addAtCentre(t.type)}
                title={t.doc.summary}
                data-type={t.type}
              >
                <span className="palette-item-title">{t.title}</span>
                <span className="palette-item-sub">{t.doc.summary}</span>
              </button>
            ))}
          </section>
        ))}
      </div>
    </aside>
  );
}
