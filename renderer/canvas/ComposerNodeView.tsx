// One node component for every family: coloured by family, handles coloured by port kind and labelled, with the
// frozen badge, adapter chips, a parameter-count slot and the node's validation messages. Below the detail zoom
// (detail.ts) it draws a light box of the same size instead: family colour, title, error/frozen/selected state, and
// the handles (hidden) so edges still attach where the port rows are.

import { Handle, Position, type NodeProps } from '@xyflow/react';
import { memo, type CSSProperties } from 'react';
import type { NodeTypeInfoWire, PortSpecWire } from '../../electron/host/contract.js';
import { formatBytes, formatCount, type NodeRunState } from '../store/jobs.js';
import { formatShape, inHandle, outHandle, nodePorts, type ComposerNode } from '../store/model.js';
import { LOADING_WEIGHTS } from '../store/models.js';
import { useComposer, type ComposerState } from '../store/store.js';
import { connectedHandles, nodeHeight, nodeProblems, portRowCentre, SHOWN_PARAMS, useLowDetail } from './detail.js';
import { FAMILY_LABEL, familyColor, kindColor } from './theme.js';

function PortRow({ port, side }: { port: PortSpecWire; side: 'in' | 'out' }) {
  const style = { '--kind': kindColor(port.kind) } as CSSProperties;
  const shape = formatShape(port.shape);
  return (
    <div className={`port port-${side}`} style={style} title={`${port.name}: ${port.doc ?? `${port.kind}${shape ? ` ${shape}` : ''}`}`}>
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

/** The node's state in the current run: a ring while it runs, token progress, cached / time / error markers. */
function RunMarker({ state }: { state: NodeRunState | undefined }) {
  if (!state) return null;
  if (state.status === 'running') {
    return <span className="run-ring" role="progressbar" aria-label="Running" title="Running" />;
  }
  if (state.status === 'cached') {
    return (
      <span className="badge badge-cached" data-testid="cached-marker" title="Output reused from the cache: nothing upstream changed">
        cached
      </span>
    );
  }
  if (state.status === 'computed') {
    return (
      <span className="badge badge-computed" data-testid="computed-marker" title="Computed in this run">
        ✓ {formatMs(state.ms)}
      </span>
    );
  }
  return (
    <span className="badge badge-failed" data-testid="error-marker" title={state.message}>
      ✕ failed
    </span>
  );
}

/** `12/16 tokens`, or the bytes of a model folder's weights read so far. */
function progressLabel(state: NodeRunState, long: boolean): string {
  const done = state.done ?? 0;
  const total = state.total ?? 0;
  if (state.unit === LOADING_WEIGHTS) {
    // Short enough for the node's bar: `weights 40% of 1.20 GiB`.
    return long ? `${LOADING_WEIGHTS}: ${formatBytes(done)} of ${formatBytes(total)}` : `weights ${Math.floor((100 * done) / Math.max(1, total))}% of ${formatBytes(total)}`;
  }
  return long ? `${done} of ${total} ${state.unit ?? 'step'}s` : `${done}/${total} ${state.unit ? `${state.unit}s` : ''}`;
}

function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function nodeClass(selected: boolean, hasError: boolean, frozen: boolean, run: NodeRunState | undefined): string {
  return `cnode${selected ? ' selected' : ''}${hasError ? ' has-error' : ''}${frozen ? ' frozen' : ''}${run ? ` run-${run.status}` : ''}`;
}

const selectCatalog = (s: ComposerState) => s.catalog;

/**
 * The light box drawn below the detail zoom: as tall as the full node, with only the handles edges attach to (hidden,
 * where the port rows are), so the edges stay put.
 */
function LightNode({ id, data, selected, info }: NodeProps<ComposerNode> & { info: NodeTypeInfoWire | undefined }) {
  const catalog = useComposer(selectCatalog);
  const runState = useComposer((s) => s.run.nodes[id]);
  const hasError = useComposer((s) => nodeProblems(s.diagnostics, id).some((p) => p.startsWith('error:')));
  const connected = useComposer((s) => connectedHandles(s.edges, id)).split(' ');
  const { inputs, outputs } = nodePorts(catalog, { data });
  const params = Math.min(SHOWN_PARAMS, info?.params.length ?? 0);
  const style = { '--family': familyColor(info?.family), height: nodeHeight(Math.max(inputs.length, outputs.length), params) } as CSSProperties;
  const handles = (ports: PortSpecWire[], side: 'in' | 'out') =>
    ports.map((p, row) => {
      const handleId = side === 'in' ? inHandle(p.name) : outHandle(p.name);
      if (!connected.includes(handleId)) return null;
      return (
        <Handle
          key={handleId}
          type={side === 'in' ? 'target' : 'source'}
          position={side === 'in' ? Position.Left : Position.Right}
          id={handleId}
          className="handle"
          style={{ top: portRowCentre(row) }}
          isConnectable={false}
        />
      );
    });
  return (
    <div className={`${nodeClass(!!selected, hasError, data.frozen, runState)} lod`} style={style} data-testid={`node-${id}`}>
      <div className="cnode-lod-title">
        {data.frozen ? '❄ ' : ''}
        {info?.title ?? data.type}
      </div>
      {handles(inputs, 'in')}
      {handles(outputs, 'out')}
    </div>
  );
}

function ComposerNodeViewImpl(props: NodeProps<ComposerNode>) {
  const low = useLowDetail();
  const info = useComposer((s) => s.catalog[props.data.type]);
  return low ? <LightNode {...props} info={info} /> : <FullNode {...props} info={info} />;
}

function FullNode({ id, data, selected, info }: NodeProps<ComposerNode> & { info: NodeTypeInfoWire | undefined }) {
  const catalog = useComposer(selectCatalog);
  const runState = useComposer((s) => s.run.nodes[id]);
  const result = useComposer((s) => s.run.results.find((r) => r.node === id));
  const runImage = useComposer((s) => (data.type === 'io.image' ? s.runImage : null));
  const problems = useComposer((s) => nodeProblems(s.diagnostics, id));
  const { inputs, outputs } = nodePorts(catalog, { data });
  const errors = problems.filter((p) => p.startsWith('error:'));
  const family = info?.family;
  const style = { '--family': familyColor(family) } as CSSProperties;
  const shownParams = (info?.params ?? []).slice(0, SHOWN_PARAMS);

  return (
    <div className={nodeClass(!!selected, errors.length > 0, data.frozen, runState)} style={style} data-testid={`node-${id}`}>
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
        <RunMarker state={runState} />
      </div>
      {(runState?.status === 'running' || runState?.status === 'computed') && runState.total !== undefined && (
        <div className={`node-progress ${runState.status}`} data-testid="node-progress" title={progressLabel(runState, true)}>
          <div className="node-progress-bar" style={{ width: `${Math.min(100, (100 * (runState.done ?? 0)) / Math.max(1, runState.total))}%` }} />
          <span>{progressLabel(runState, false)}</span>
        </div>
      )}
      {runState?.status === 'error' && runState.message && (
        <div className="cnode-run-error" role="alert" data-testid="node-run-error">
          {runState.message}
        </div>
      )}
      {runImage && (
        <div className="cnode-image" title={`Run image: ${runImage.name}`}>
          <img src={runImage.dataUrl} alt={runImage.name} />
          <span className="muted small">{runImage.name}</span>
        </div>
      )}
      {result?.text !== undefined && (
        <div className="cnode-output" data-testid="node-output-text">
          {result.text || <span className="muted">(empty text)</span>}
        </div>
      )}
      {result?.imageDataUrl && (
        <div className="cnode-image">
          <img src={result.imageDataUrl} alt={`output of ${id}`} />
        </div>
      )}
      <div className="cnode-ports">
        <div className="ports-col">{inputs.map((p) => <PortRow key={p.name} port={p} side="in" />)}</div>
        <div className="ports-col right">{outputs.map((p) => <PortRow key={p.name} port={p} side="out" />)}</div>
      </div>
      {shownParams.length > 0 && (
        <div className="cnode-params">
          {shownParams.map((p) => (
            <div key={p.name} className="kv">
              <span>{p.name}</span>
              <span className="mono">{p.name === 'base64' ? embeddedLabel(data.params[p.name]) : formatValue(data.params[p.name] ?? p.default)}</span>
            </div>
          ))}
        </div>
      )}
      <div className="cnode-foot">
        <div className="chips">
          <WeightsSource weights={data.weights} fresh={data.freshWeights} />
          {data.adapters.map((a) => (
            <span key={a.id} className="chip" title={`adapter ${a.id}`}>
              {a.method.toUpperCase()}
            </span>
          ))}
        </div>
        <ParamCount id={id} />
      </div>
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

/**
 * A Hugging Face folder the node's weights come from (and which part of the model it holds), and the weights
 * initialised afresh despite the weights file (freshWeights), so a partly loaded checkpoint is visible on the canvas.
 */
const WeightsSource = memo(function WeightsSource({ weights, fresh }: { weights: ComposerNode['data']['weights']; fresh: ComposerNode['data']['freshWeights'] }) {
  if (!weights?.hf && !fresh?.length) return null;
  const folder = weights?.path.split(/[\\/]/).filter(Boolean).pop() ?? '';
  return (
    <>
      {weights?.hf && (
        <span className="chip subtle" data-testid="node-weights" title={`Weights read from the Hugging Face folder ${weights.path} (${weights.hf.architecture} ${weights.hf.part})`}>
          {folder} · {weights.hf.part}
        </span>
      )}
      {fresh?.length ? (
        <span className="chip" data-testid="node-fresh-weights" title={`Initialised from the seed although the weights file is loaded: ${fresh.join(', ')}`}>
          fresh: {fresh.length === 1 ? fresh[0] : `${fresh.length} weights`}
        </span>
      ) : null}
    </>
  );
});

/** The node's parameter count: total, and trainable when it differs (frozen, adapters); nothing when it failed. */
function ParamCount({ id }: { id: string }) {
  const count = useComposer((s) => s.nodeParamCounts[id]);
  if (!count) {
    return (
      <span className="param-count pending" title="Parameter count: not counted yet">
        — params
      </span>
    );
  }
  if (count.error) return <span className="param-count" data-testid="param-count" title={`No parameter count: ${count.error}`} />;
  if (!count.onnx) return <span className="param-count" data-testid="param-count" title="A host step: no weights" />;
  if (count.sharedWith && count.params === 0 && count.adapterParams === 0) {
    return (
      <span className="param-count" data-testid="param-count" title={`Its weights are ${count.sharedWith}'s (tied embedding), counted there`}>
        shared · {count.sharedWith}
      </span>
    );
  }
  const total = count.params + count.adapterParams;
  const exact = `${total.toLocaleString('en-US')} parameters, ${count.trainable.toLocaleString('en-US')} trainable` +
    (count.adapterParams ? ` (${count.adapterParams.toLocaleString('en-US')} in adapters)` : '') +
    (count.describeOnly ? '; counted from the weight shapes (no checkpoint loaded)' : '');
  return (
    <span className="param-count" data-testid="param-count" title={exact}>
      {formatCount(total)} params
      {count.trainable !== total && <span className="param-trainable"> · {formatCount(count.trainable)} trainable</span>}
    </span>
  );
}

/** An embedded file shows as its size, not its bytes. */
export function embeddedLabel(v: unknown): string {
  if (typeof v !== 'string' || v === '') return '—';
  const padding = v.endsWith('==') ? 2 : v.endsWith('=') ? 1 : 0;
  return `embedded · ${formatBytes((v.length * 3) / 4 - padding)}`;
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return '—';
  const s = JSON.stringify(v);
  return s.length > 18 ? `${s.slice(0, 17)}…` : s;
}

export const ComposerNodeView = memo(ComposerNodeViewImpl);
