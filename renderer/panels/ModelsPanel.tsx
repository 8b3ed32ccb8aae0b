// Models panel: the Hugging Face folders imported in this profile — architecture, parameters, dtype, size on disk,
// where each lies, and the memory loading it needs against what the machine has free — with a bar while a dropped
// folder uploads or the current run reads a folder's weights. Add one to the canvas, open it as the graph, copy its
// path, or take it off the list (its files stay).

import { memo, useEffect, type CSSProperties } from 'react';
import { useShallow } from 'zustand/react/shallow';
import type { ImportedModel } from '../../electron/host/contract.js';
import { copyPath, importModelFolder, openImportFolder, refreshModels, removeModel } from '../app/models.js';
import { formatBytes, formatCount } from '../store/jobs.js';
import { dtypeLabel, folderLoading, MEMORY_FORMULA, memoryEstimate } from '../store/models.js';
import { useComposer, type ModelsSlice } from '../store/store.js';
import './models.css';

/** A bar with its label: `done` of `total` (bytes when `bytes`). */
export function ProgressLine({ label, done, total, testId }: { label: string; done?: number; total?: number; testId: string }) {
  const known = done !== undefined && total !== undefined && total > 0;
  const style = { width: known ? `${Math.min(100, (100 * done) / total)}%` : '100%' } as CSSProperties;
  return (
    <div className={`node-progress running models-progress${known ? '' : ' indeterminate'}`} data-testid={testId} role="progressbar" aria-label={label}>
      <div className="node-progress-bar" style={style} />
      <span>
        {label}
        {known ? ` ${formatBytes(done)} / ${formatBytes(total)}` : ''}
      </span>
    </div>
  );
}

const ModelRow = memo(function ModelRow({ model, free, total }: { model: ImportedModel; free?: number; total?: number }) {
  const loading = useComposer(useShallow((s) => folderLoading(s.nodes, s.run, model.dir)));
  const need = memoryEstimate(model.parameters);
  const over = free !== undefined && need > free;
  const memoryTitle =
    `About ${formatBytes(need)} to load = ${MEMORY_FORMULA}.` +
    (free !== undefined && total !== undefined ? ` This machine has ${formatBytes(free)} free of ${formatBytes(total)}.` : '') +
    (over ? ' Loading it may swap or fail: close other programs or pick a smaller model.' : '');
  return (
    <tr data-testid="model-row" data-dir={model.dir}>
      <td className="model-main">
        <div className="model-name">
          <strong>{model.name}</strong>
          {model.uploaded && (
            <span className="chip subtle" title="A copy the browser uploaded into the app's data folder">
              uploaded copy
            </span>
          )}
        </div>
        <div className="muted small" title={`Imported with the ${model.architecture} mapping`}>
          {model.class}
        </div>
        <div className="model-where">
          <span className="mono muted model-path" title={model.dir}>
            {model.dir}
          </span>
          <button className="link-button" onClick={() => void copyPath(model.dir)} title="Copy the folder's path">
            Copy path
          </button>
        </div>
        {loading && <ProgressLine label="loading weights" done={loading.done} total={loading.total} testId="model-loading" />}
      </td>
      <td className="mono" data-testid="model-params" title={`${model.parameters.toLocaleString('en-US')} parameters`}>
        {formatCount(model.parameters)}
      </td>
      <td className="mono" data-testid="model-dtype">
        {dtypeLabel(model.dtypes)}
      </td>
      <td className="mono" data-testid="model-size" title={`${model.fileCount} files; weights ${formatBytes(model.weightBytes)}`}>
        {formatBytes(model.diskBytes)}
      </td>
      <td className={`mono${over ? ' memory-over' : ''}`} data-testid="model-memory" data-over={over} title={memoryTitle}>
        ≈ {formatBytes(need)}
        {over && <span aria-label="more than the free memory"> ⚠</span>}
      </td>
      <td className="model-actions">
        <button onClick={() => void importModelFolder({ source: 'path', path: model.dir }, { kind: 'auto' }, `Adding “${model.name}”…`, 'Added')}>Add to canvas</button>
        <button onClick={() => void importModelFolder({ source: 'path', path: model.dir }, { kind: 'open' }, `Opening “${model.name}”…`, 'Opened')}>Open as graph</button>
        <button className="icon" aria-label={`Remove ${model.name} from the list`} title="Remove from the list (the folder stays on disk)" onClick={() => void removeModel(model.dir)}>
          ✕
        </button>
      </td>
    </tr>
  );
});

const selectModels = (s: ModelsSlice) => ({ models: s.models, memory: s.memory, importing: s.importing });

export function ModelsPanel({ available }: { available: boolean }) {
  const { models, memory, importing } = useComposer(useShallow(selectModels));
  useEffect(() => {
    void refreshModels();
    // Free memory changes as other programs run: keep the comparison current while the panel is open.
    const timer = setInterval(() => void refreshModels(), 10_000);
    return () => clearInterval(timer);
  }, []);
  return (
    <div className="models-panel">
      <div className="models-head">
        <button className="primary" onClick={openImportFolder} disabled={!available} title={available ? undefined : 'Import: not available yet (the folder importer is not part of this build)'}>
          Import model folder…
        </button>
        <span className="muted small">or drop a folder (or its config.json) on the canvas</span>
        <span className="spacer" />
        {memory && (
          <span className="small" data-testid="machine-memory" title={`Memory to load a model ≈ ${MEMORY_FORMULA}`}>
            Memory: <strong className="mono">{formatBytes(memory.freeBytes)}</strong> free of {formatBytes(memory.totalBytes)}
          </span>
        )}
      </div>
      {importing && <ProgressLine label={importing.label} done={importing.done} total={importing.total} testId="models-importing" />}
      {models.length === 0 ? (
        <div className="muted empty-models">
          No model folder imported yet. A Hugging Face folder (config.json, safetensors weights, tokenizer) becomes a graph whose nodes read
          the weights where they lie.
        </div>
      ) : (
        <table className="compare-table models-table" data-testid="models-table">
          <thead>
            <tr>
              <th>Model</th>
              <th>Parameters</th>
              <th>dtype</th>
              <th>On disk</th>
              <th title={MEMORY_FORMULA}>Memory to load</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <ModelRow key={m.dir} model={m} free={memory?.freeBytes} total={memory?.totalBytes} />
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
