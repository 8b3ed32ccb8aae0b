// Export panel: the graph as a runnable bundle, one fused ONNX model, PEFT-format adapters, an inference-server
// repository or a Hugging Face folder; shows where the files went.

import { useState } from 'react';
import { startExport, type ExportFormat } from '../app/jobs.js';
import { formatBytes, isActive } from '../store/jobs.js';
import { useComposer } from '../store/store.js';

const FORMATS: Array<{ id: ExportFormat; title: string; doc: string }> = [
  { id: 'bundle', title: 'Bundle', doc: 'A folder that runs headless with `vlmc run`: the graph, every node as ONNX, weights and tokenizer.' },
  { id: 'fused-onnx', title: 'Fused ONNX', doc: 'The model nodes merged into one .onnx file (opens in Netron, runs in any ONNX runtime).' },
  { id: 'peft-adapters', title: 'PEFT adapters', doc: 'adapter_config.json + adapter_model.safetensors per adapted node, loadable by Hugging Face PEFT.' },
  { id: 'server-repository', title: 'Server repository', doc: 'A model repository layout for an inference server.' },
  {
    id: 'hf-folder',
    title: 'Hugging Face folder',
    doc: 'config.json, model.safetensors in transformers names, tokenizer and processor files and a model card: from_pretrained and vLLM load it (LLaMA, Mistral, Qwen2, OPT, GPT-2, LLaVA).',
  },
];

export function ExportPanel({ available, electron }: { available: boolean; electron: boolean }) {
  const job = useComposer((s) => s.exportJob);
  const name = useComposer((s) => s.name);
  const hasAdapters = useComposer((s) => s.nodes.some((n) => n.data.adapters.length > 0));
  const [format, setFormat] = useState<ExportFormat>('bundle');
  const [folder, setFolder] = useState('');
  const active = isActive(job.status);
  const folderName = folder.trim() || `${(name || 'graph').replace(/[^A-Za-z0-9._-]+/g, '-')}-${format}`;

  return (
    <div className="export-panel">
      <div className="export-setup">
        <div className="export-formats" role="radiogroup" aria-label="Export format">
          {FORMATS.map((f) => (
            <label key={f.id} className={`export-format${format === f.id ? ' active' : ''}`}>
              <input type="radio" name="export-format" value={f.id} checked={format === f.id} onChange={() => setFormat(f.id)} />
              <span>
                <strong>{f.title}</strong>
                <span className="muted small">{f.doc}</span>
                {f.id === 'peft-adapters' && !hasAdapters && <span className="status-error small"> This graph has no adapters yet.</span>}
              </span>
            </label>
          ))}
        </div>
        <label className="field">
          <span className="field-name">Folder name (in the app's data folder)</span>
          <input type="text" value={folder} placeholder={folderName} aria-label="Export folder name" onChange={(e) => setFolder(e.target.value)} />
        </label>
        <div className="run-buttons">
          <button
            className="primary"
            disabled={!available || active}
            title={available ? 'Export' : 'Export: not available yet (the exporter is not part of this build)'}
            onClick={() => void startExport(format, { kind: 'appData', folderName })}
          >
            Export
          </button>
          {electron && (
            <button disabled={!available || active} onClick={() => void startExport(format, { kind: 'dialog' })}>
              Export to folder…
            </button>
          )}
        </div>
      </div>
      <div className="export-result" data-testid="export-result" data-status={job.status}>
        {job.status === 'idle' && <div className="muted">Nothing exported yet.</div>}
        {active && (
          <div className="muted">
            <span className="run-ring inline" /> Exporting…
          </div>
        )}
        {job.status === 'error' && (
          <div className="status-error" role="alert">
            {job.message}
          </div>
        )}
        {job.status === 'done' && job.path && (
          <div>
            <div className="status-ok">✓ Exported to</div>
            <code className="export-path" data-testid="export-path">
              {job.path}
            </code>
          </div>
        )}
        {job.files.length > 0 && (
          <ul className="export-files">
            {job.files.map((f) => (
              <li key={f.path}>
                <span className="mono">{f.path}</span>
                <span className="muted small">{formatBytes(f.bytes)}</span>
              </li>
            ))}
          </ul>
        )}
        {job.log.length > 0 && (
          <pre className="export-log">{job.log.join('\n')}</pre>
        )}
      </div>
    </div>
  );
}
