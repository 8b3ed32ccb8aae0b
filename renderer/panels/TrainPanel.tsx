// Train panel: recipe, dataset, steps, learning rate and adapters; Start / Pause / Resume / Stop; a live loss
// chart with the evaluation metrics, a progress bar with ETA, and the checkpoints (listed, and resumable).

import { useEffect, useState } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { BUILTIN_DATASETS, isBuiltinDataset } from '../../electron/engine/datasets/builtin.js';
import type { TrainConfig } from '../../electron/host/contract.js';
import { controlTraining, listCheckpoints, pickDataset, startTraining } from '../app/jobs.js';
import { etaMs, formatBytes, formatDuration, isActive } from '../store/jobs.js';
import { composerStore, useComposer } from '../store/store.js';
import { LossChart } from './LossChart.js';

const MODEL_FAMILIES = new Set(['encoder', 'input-projector', 'llm', 'output-projector', 'generator', 'imported']);
/** Friendlier names for the recipes the trainer reports (engine.info); unknown ones show their id. */
const RECIPE_LABEL: Record<string, string> = {
  captioning: 'Captioning (image → caption, your freezes)',
  vqa: 'Visual question answering (your freezes)',
  instruction: 'Instruction tuning (your freezes)',
  lm: 'Language modelling (text only)',
  'blip2-stage2': 'BLIP-2 stage 2 (train the Q-Former + projection)',
  instructblip: 'InstructBLIP (instruction-aware Q-Former)',
  'minigpt4-stage1': 'MiniGPT-4 stage 1 (projection only)',
  'llava-stage1': 'LLaVA stage 1 (projector pre-training)',
  'llava-stage2': 'LLaVA stage 2 (projector + LLM)',
  flamingo: 'Flamingo (gated cross-attention)',
  clip: 'CLIP (contrastive image-text)',
  'encoder-contrastive': 'Contrastive encoder tuning',
  'nextgpt-output': 'NExT-GPT output alignment (output projector)',
  'text-to-image': 'Text-to-image (train the UNet on captions)',
};

/** Recipes that need more than the panel asks for: nextgpt-align's teacher graph is given with `vlmc train --teacher`. */
const CLI_ONLY_RECIPES = new Set(['nextgpt-align']);

type Checkpoint = Awaited<ReturnType<typeof listCheckpoints>>[number];

/** The metric each task's papers report, as the trainer's eval names it: CIDEr-D (captioning), VQA accuracy, R@1 (ITC). */
const PAPER_METRICS: Array<[string, string]> = [['cider', 'CIDEr'], ['vqa_accuracy', 'VQA acc'], ['retrieval_r1', 'R@1']];

export function TrainPanel({ available, browser, recipes }: { available: boolean; browser: boolean; recipes: string[] }) {
  const train = useComposer((s) => s.train);
  const theme = useComposer((s) => s.theme);
  const trainables = useComposer(
    useShallow((s) =>
      s.nodes
        .filter((n) => MODEL_FAMILIES.has(s.catalog[n.data.type]?.family ?? ''))
        .map((n) => `${n.id}|${n.data.frozen ? 'frozen' : 'trained'}|${n.data.adapters.map((a) => a.method).join('+')}|${s.catalog[n.data.type]?.family}|${n.data.type}`),
    ),
  );
  const [recipe, setRecipe] = useState('captioning');
  const [dataset, setDataset] = useState<string>(BUILTIN_DATASETS[0]);
  const [datasetSize, setDatasetSize] = useState(256);
  const [steps, setSteps] = useState(100);
  const [lr, setLr] = useState(2e-4);
  const [batchSize, setBatchSize] = useState(4);
  const [optimizer, setOptimizer] = useState<'adamw' | 'sgd'>('adamw');
  const [evalEvery, setEvalEvery] = useState(25);
  const [checkpointEvery, setCheckpointEvery] = useState(50);
  const [resumeFrom, setResumeFrom] = useState<string | null>(null);
  const [saved, setSaved] = useState<Checkpoint[]>([]);
  const active = isActive(train.status) || train.status === 'paused';

  useEffect(() => {
    void listCheckpoints().then(setSaved);
  }, [train.checkpoints.length, train.status]);

  const rows = trainables.map((x) => {
    const [id, state, adapters, family, type] = x.split('|');
    return { id, frozen: state === 'frozen', adapters: adapters ? adapters.split('+') : [], family, type };
  });
  const trained = rows.filter((r) => !r.frozen || r.adapters.length);
  // LoRA goes on the decoder itself, not on its token embedding.
  const llm = rows.find((r) => r.type === 'llm.decoder') ?? rows.find((r) => r.family === 'llm');
  const builtin = isBuiltinDataset(dataset);
  const eta = etaMs(train);
  const lastEval = train.evals.at(-1);
  const paper = lastEval && PAPER_METRICS.find(([k]) => lastEval.metrics[k] !== undefined);
  const pct = train.totalSteps ? Math.min(100, (100 * train.step) / train.totalSteps) : 0;

  const config = (): TrainConfig => ({
    steps,
    learningRate: lr,
    batchSize,
    optimizer,
    dataset,
    recipe,
    datasetSize,
    evalEvery,
    checkpointEvery,
    ...(resumeFrom ? { resumeFrom } : {}),
  });

  return (
    <div className="train-panel">
      <div className="train-config">
        <label className="field">
          <span className="field-name">Recipe</span>
          <select value={recipe} onChange={(e) => setRecipe(e.target.value)} aria-label="Recipe">
            {(recipes.length ? recipes.filter((r) => !CLI_ONLY_RECIPES.has(r)) : [recipe]).map((r) => (
              <option key={r} value={r}>
                {RECIPE_LABEL[r] ?? r}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span className="field-name">Dataset</span>
          <select
            value={builtin ? dataset : 'file'}
            aria-label="Dataset"
            onChange={(e) => {
              if (e.target.value !== 'file') return setDataset(e.target.value);
              if (browser) return setDataset('');
              void pickDataset().then((p) => p && setDataset(p));
            }}
          >
            {BUILTIN_DATASETS.map((d) => (
              <option key={d} value={d}>
                Built-in: {d}
              </option>
            ))}
            <option value="file">File (jsonl, csv, COCO, LLaVA)…</option>
          </select>
          {!builtin && (
            <input
              type="text"
              value={dataset}
              placeholder={browser ? 'Path of a dataset file inside the app data folder' : 'Dataset file'}
              aria-label="Dataset file"
              onChange={(e) => setDataset(e.target.value)}
            />
          )}
        </label>
        {builtin && (
          <label className="field">
            <span className="field-name">Samples</span>
            <input type="number" min={8} step={8} value={datasetSize} onChange={(e) => setDatasetSize(Number(e.target.value))} />
          </label>
        )}
        <div className="field-row">
          <label className="field">
            <span className="field-name">Steps</span>
            <input type="number" min={1} value={steps} aria-label="Steps" onChange={(e) => setSteps(Math.max(1, Number(e.target.value)))} />
          </label>
          <label className="field">
            <span className="field-name">Learning rate</span>
            <input type="number" min={0} step="any" value={lr} aria-label="Learning rate" onChange={(e) => setLr(Number(e.target.value))} />
          </label>
          <label className="field">
            <span className="field-name">Batch</span>
            <input type="number" min={1} value={batchSize} onChange={(e) => setBatchSize(Math.max(1, Number(e.target.value)))} />
          </label>
        </div>
        <div className="field-row">
          <label className="field">
            <span className="field-name">Optimiser</span>
            <select value={optimizer} onChange={(e) => setOptimizer(e.target.value as 'adamw' | 'sgd')}>
              <option value="adamw">AdamW</option>
              <option value="sgd">SGD</option>
            </select>
          </label>
          <label className="field">
            <span className="field-name">Eval every</span>
            <input type="number" min={0} value={evalEvery} onChange={(e) => setEvalEvery(Math.max(0, Number(e.target.value)))} />
          </label>
          <label className="field">
            <span className="field-name">Save every</span>
            <input type="number" min={1} value={checkpointEvery} onChange={(e) => setCheckpointEvery(Math.max(1, Number(e.target.value)))} />
          </label>
        </div>
        <div className="field">
          <span className="field-name">Trained parts</span>
          <ul className="trainables" data-testid="trainables">
            {trained.length === 0 && <li className="status-error small">Everything is frozen and has no adapter: nothing to train.</li>}
            {trained.map((r) => (
              <li key={r.id}>
                <span className="mono">{r.id}</span> {r.frozen ? <span className="muted">frozen</span> : <span className="status-ok">full</span>}
                {r.adapters.map((a) => (
                  <span key={a} className="chip">
                    {a.toUpperCase()}
                  </span>
                ))}
              </li>
            ))}
          </ul>
          {llm && !llm.adapters.includes('lora') && (
            <button onClick={() => composerStore.getState().addAdapter(llm.id, 'lora')}>Attach LoRA to {llm.id}</button>
          )}
        </div>
        {resumeFrom && (
          <div className="resume-note small">
            Resuming from{' '}
            <span className="mono" title={resumeFrom}>
              {resumeFrom.split(/[\\/]/).pop()}
            </span>{' '}
            <button className="icon" aria-label="Do not resume" onClick={() => setResumeFrom(null)}>
              ✕
            </button>
          </div>
        )}
        <div className="run-buttons">
          <button
            className="primary"
            disabled={!available || active || !dataset || trained.length === 0}
            title={available ? 'Start training' : 'Train: not available yet (the trainer is not part of this build)'}
            onClick={() => void startTraining(config())}
          >
            Start
          </button>
          {train.status === 'paused' ? (
            <button onClick={() => void controlTraining('train.resume')}>Resume</button>
          ) : (
            <button disabled={train.status !== 'running'} onClick={() => void controlTraining('train.pause')}>
              Pause
            </button>
          )}
          <button disabled={!active} onClick={() => void controlTraining('train.stop')}>
            Stop
          </button>
        </div>
      </div>
      <div className="train-live">
        <div className="train-progress">
          <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={train.totalSteps} aria-valuenow={train.step} aria-label="Training progress">
            <div className="progress-bar" style={{ width: `${pct}%` }} />
          </div>
          <span className="mono small" data-testid="train-status">
            {train.status === 'idle' && 'Not started'}
            {train.status !== 'idle' && `step ${train.step}/${train.totalSteps || '?'}`}
            {train.losses.length > 0 && ` · loss ${train.losses[train.losses.length - 1].toFixed(4)}`}
            {paper && lastEval && <span data-testid="train-paper-metric">{` · ${paper[1]} ${lastEval.metrics[paper[0]].toFixed(3)} @${lastEval.step}`}</span>}
            {train.learningRate !== undefined && ` · lr ${train.learningRate.toExponential(1)}`}
            {train.status === 'running' && eta !== null && ` · ETA ${formatDuration(eta)}`}
            {train.status === 'paused' && ' · paused'}
            {(train.status === 'done' || train.status === 'stopped') && ` · ${train.status} after ${formatDuration(train.elapsedMs)}`}
          </span>
        </div>
        {train.status === 'error' && (
          <div className="status-error" role="alert">
            {train.message}
          </div>
        )}
        <LossChart train={train} theme={theme} />
        {lastEval && (
          <div className="eval-metrics small">
            Eval at step {lastEval.step}:{' '}
            {Object.entries(lastEval.metrics).map(([k, v]) => (
              <span key={k} className="chip subtle">
                {k} {v.toFixed(4)}
              </span>
            ))}
          </div>
        )}
      </div>
      <div className="checkpoints">
        <div className="field-name">Checkpoints</div>
        {saved.length === 0 && <div className="muted small">None yet.</div>}
        <ul data-testid="checkpoints">
          {saved.map((c) => (
            <li key={c.path}>
              <span className="checkpoint-name" title={c.path}>
                <span className="mono">{c.name.split(/[\\/]/).pop()}</span>
                <span className="muted small mono">{c.name.split(/[\\/]/).slice(0, -1).join('/').slice(0, 8)}</span>
              </span>
              <span className="muted small">
                {formatBytes(c.bytes)} · {new Date(c.modifiedAt).toLocaleTimeString()}
              </span>
              <button disabled={active} onClick={() => setResumeFrom(c.path)} title="Start the next training from this checkpoint">
                Resume from
              </button>
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
