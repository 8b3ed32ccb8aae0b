// One node component for every family: coloured by family, handles coloured by port kind and labelled, with the
// frozen badge, adapter chips, a parameter-count slot and the node's validation messages.

import { Handle, Position, type NodeProps } from '@xyflow/react';
import { memo, type CSSProperties } from 'react';
import { useShallow } from 'zustand/react/shallow';
import type { PortSpecWire } from '../../electron/host/contract.js';
import { formatShape, inHandle, outHandle, portsOf, type ComposerNode } from '../store/model.js';
import { useComposer } from '../store/store.js';
import { FAMILY_LABEL, familyColor, kindColor } from './theme.js';

function PortRow({ port, side }: { port: PortSpecWire; side: 'in' | 'out' }) {
  const style = { '--kind': kindColor(port.kind) } as CSSProperties;
  const shape = formatShape(port.shape);
  return (
    <div className={`port port-${side}`} style={style} title={port.doc ?? `${port.kind}${shape ? ` ${shape}` : ''}`}>
      <Handle
        type={side === 'in' ? 'target' : 'source'}
        position={side === 'in' ? Position.Left : Position.Right}
        id={side === 'in' ? inHandle(port.name) : outHandle(port.name)}
        className="handle"
        isConnectableStart={side === 'out'}
      />
      <span className="port-name">{port.name}</span>
      <span className="port-kind">{port.kind}</span>
    </div>
  );
}

function ComposerNodeViewImpl({ id, data, selected }: NodeProps<ComposerNode>) {
  const info = useComposer((s) => s.catalog[data.type]);
  const problems = useComposer(
    useShallow((s) => s.diagnostics.filter((d) => d.nodeId === id).map((d) => `${d.severity}:${d.port ? `${d.port}: ` : ''}${d.message}`)),
  );
  const { inputs, outputs } = portsOf(info);
  const errors = problems.filter((p) => p.startsWith('error:'));
  const family = info?.family;
  const style = { '--family': familyColor(family) } as CSSProperties;
  const shownParams = (info?.params ?? []).slice(0, 3);

  return (
    <div
      className={`cnode${selected ? ' selected' : ''}${errors.length ? ' has-error' : ''}${data.frozen ? ' frozen' : ''}`}
      style={style}
      data-testid={`node-${id}`}
    >
      <div className="cnode-head">
        <span className="cnode-dot" />
        <div className="cnode-titles">
          <div className="cnode-title">{info?.title ?? data.type}</div>
          <div className="cnode-sub">
            {FAMILY_LABEL[family ?? ''] ?? 'Unknown type'} · <span className="mono">{id}</span>
          </div>
        </div>
        {data.frozen && (
          <span className="badge badge-frozen" title="Frozen: weights are not trained">
            ❄ Frozen
          </span>
        )}
      </div>
      <div className="cnode-ports">
        <div className="ports-col">{inputs.map((p) => <PortRow key={p.name} port={p} side="in" />)}</div>
        <div className="ports-col right">{outputs.map((p) => <PortRow key={p.name} port={p} side="out" />)}</div>
      </div>
      {shownParams.length > 0 && (
        <div className="cnode-params">
          {shownParams.map((p) => (
            <div key={p.name} className="kv">
              <span>{p.name}</span>
              <span className="mono">{formatValue(data.params[p.name] ?? p.default)}</span>
            </div>
          ))}
        </div>
      )}
      {(
        <div className="cnode-foot">
          <div className="chips">
            {data.adapters.map((a) => (
              <span key={a.id} className="chip" title={`adapter ${a.id}`}>
                {a.method.toUpperCase()}
              </span>
            ))}
          </div>
          <span className="param-count" title="Parameter count (computed when the graph is built)">
            — params
          </span>
        </div>
      )}
      {!info && <div className="cnode-error">Unknown node type '{data.type}'</div>}
      {problems.length > 0 && (
        <ul className="cnode-problems">
          {problems.slice(0, 3).map((p) => (
            <li key={p} className={p.startsWith('error:') ? 'err' : 'warn'}>
              {p.replace(/^(error|warning):/, '')}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return '—';
  const s = JSON.stringify(v);
  return s.length > 18 ? `${s.slice(0, 17)}…` : s;
}

export const ComposerNodeView = memo(ComposerNodeViewImpl);
