// Import model folder… in browser mode, which has no folder dialog: the host runs on this machine, so the user types
// the folder's path (or picks a recent one); a failure shows here, naming the file, tensor or field.

import { useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { importModelFolder } from '../app/models.js';
import { formatBytes, formatCount } from '../store/jobs.js';
import { composerStore, useComposer, type ModelsSlice } from '../store/store.js';
import { Modal } from './Overlays.js';
import './models.css';

const selectDialog = (s: ModelsSlice) => ({ models: s.models, importing: s.importing, error: s.importError, limit: s.uploadLimitBytes });

export function ImportFolderDialog() {
  const { models, importing, error, limit } = useComposer(useShallow(selectDialog));
  const [path, setPath] = useState('');
  const close = () => composerStore.getState().openDialog(null);
  const submit = (p: string) => {
    if (p.trim() && !importing) void importModelFolder({ source: 'path', path: p.trim() }, { kind: 'auto' });
  };
  return (
    <Modal title="Import model folder" onClose={close}>
      <form
        className="import-folder"
        onSubmit={(e) => {
          e.preventDefault();
          submit(path);
        }}
      >
        <p className="small">
          A Hugging Face model folder as <code>save_pretrained</code> or <code>huggingface-cli download</code> writes it: <code>config.json</code>,{' '}
          <code>model.safetensors</code> (or shards with their index) and the tokenizer files; a hub-cache snapshot (
          <code>~/.cache/huggingface/hub/models--org--name/snapshots/…</code>) works as it is. The weights are read where they lie.
        </p>
        <label className="field">
          <span className="field-name">Folder path on this machine</span>
          <input
            autoFocus
            type="text"
            value={path}
            spellCheck={false}
            placeholder="/home/me/models/TinyLlama-1.1B-Chat-v1.0"
            aria-label="Model folder path"
            onChange={(e) => setPath(e.target.value)}
          />
        </label>
        {error && (
          <div className="import-error" role="alert" data-testid="import-error">
            {error}
          </div>
        )}
        <div className="modal-actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button className="primary" type="submit" disabled={!path.trim() || importing !== null}>
            {importing ? 'Importing…' : 'Import'}
          </button>
        </div>
      </form>
      {models.length > 0 && (
        <section className="recent-folders" aria-label="Recent folders">
          <h4>Recent folders</h4>
          {models.slice(0, 8).map((m) => (
            <button
              key={m.dir}
              className="recent-folder"
              title={m.dir}
              disabled={importing !== null}
              onClick={() => {
                setPath(m.dir);
                submit(m.dir);
              }}
            >
              <span>
                <strong>{m.name}</strong> <span className="muted small">{m.class} · {formatCount(m.parameters)} parameters</span>
              </span>
              <span className="mono muted model-path">{m.dir}</span>
            </button>
          ))}
        </section>
      )}
      <p className="muted small drop-hint">
        Or drop the folder on the canvas: the browser uploads it into the app's data folder when it holds at most {formatBytes(limit ?? 512 * 2 ** 20)};
        a larger one is imported by its path here.
      </p>
    </Modal>
  );
}
