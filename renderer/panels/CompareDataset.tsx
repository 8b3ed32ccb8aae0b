// The Compare panel's Dataset mode: score the original and each alternative on a dataset with the task's paper
// metrics (optionally training each new part first), as a table, one bar chart per metric, and a click on a row opens
// that variant's misses (image, reference, prediction).

import { useState } from 'react';
import { BUILTIN_DATASETS, isBuiltinDataset } from '../../electron/engine/datasets/builtin.js';
import type { CompareDataset } from '../../electron/host/contract.js';
import { pickDataset } from '../app/jobs.js';
import { type CompareState, formatCount, formatDuration } from '../store/jobs.js';
import { useComposer } from '../store/store.js';

const TASKS = [
  { id: '', title: 'What the graph does' },
  { id: 'caption', title: 'Captioning (BLEU, ROUGE-L, CIDEr-D)' },
  { id: 'vqa', title: 'VQA (VQA accuracy)' },
  { id: 'retrieval', title: 'Retrieval (R@1/5/10)' },
  { id: 'zero-shot', title: 'Zero-shot (top-1/top-5)' },
  { id: 'generation', title: 'Drawing (colour/shape, CLIPScore)' },
] as const;

const METRIC_LABEL: Record<string, string> = {
  cider: 'CIDEr-D', bleu_1: 'BLEU-1', bleu_2: 'BLEU-2', bleu_3: 'BLEU-3', bleu_4: 'BLEU-4', rouge_l: 'ROUGE-L',
  color_acc: 'colour acc', shape_acc: 'shape acc', both_acc: 'colour+shape', vqa_accuracy: 'VQA acc',
  i2t_r1: 'I→T R@1', i2t_r5: 'I→T R@5', i2t_r10: 'I→T R@10', t2i_r1: 'T→I R@1', t2i_r5: 'T→I R@5', t2i_r10: 'T→I R@10',
  top1: 'top-1', top5: 'top-5', drawn_color: 'drawn colour', drawn_shape: 'drawn shape', drawn_both: 'drawn both', clip_score: 'CLIPScore',
};
export const metricLabel = (m: string) => METRIC_LABEL[m] ?? m;
const BAR_COLORS = ['#6366f1', '#f59e0b', '#10b981', '#ec4899', '#3b82f6', '#8b5cf6'];

export function DatasetSetup({ recipes, browser, onChange }: { recipes: string[]; browser: boolean; onChange: (d: CompareDataset | null) => void }) {
  const [name, setName] = useState<string>(BUILTIN_DATASETS[0]);
  const [task, setTask] = useState('');
  const [limit, setLimit] = useState(30);
  const [trainSteps, setTrainSteps] = useState(0);
  const [recipe, setRecipe] = useState(recipes.includes('blip2-stage2') ? 'blip2-stage2' : 'captioning');
  const [reinit, setReinit] = useState(false);
  const builtin = isBuiltinDataset(name);
  const emit = (p: Partial<{ name: string; task: string; limit: number; trainSteps: number; recipe: string; reinit: boolean }>) => {
    const d = { name, task, limit, trainSteps, recipe, reinit, ...p };
    onChange(d.name ? {
      name: d.name, limit: d.limit, reinit: d.reinit,
      ...(d.task ? { task: d.task as NonNullable<CompareDataset['task']> } : {}),
      ...(d.trainSteps > 0 ? { trainSteps: d.trainSteps, recipe: d.recipe } : {}),
    } : null);
  };
  return (
    <>
      <label className="field">
        <span className="field-name">Dataset</span>
        <select
          aria-label="Compare dataset"
          value={builtin ? name : 'file'}
          onChange={(e) => {
            if (e.target.value !== 'file') return (setName(e.target.value), emit({ name: e.target.value }));
            if (browser) return (setName(''), emit({ name: '' }));
            void pickDataset().then((p) => p && (setName(p), emit({ name: p })));
          }}
        >
          {BUILTIN_DATASETS.map((d) => <option key={d} value={d}>Built-in: {d}</option>)}
          <option value="file">File (jsonl, csv, COCO, LLaVA, VQAv2)…</option>
        </select>
        {!builtin && (
          <input type="text" value={name} aria-label="Compare dataset file" placeholder="Dataset file" onChange={(e) => (setName(e.target.value), emit({ name: e.target.value }))} />
        )}
      </label>
      <label className="field">
        <span className="field-name">Task</span>
        <select aria-label="Compare task" value={task} onChange={(e) => (setTask(e.target.value), emit({ task: e.target.value }))}>
          {TASKS.map((t) => <option key={t.id} value={t.id}>{t.title}</option>)}
        </select>
      </label>
      <div className="field-row">
        <label className="field">
          <span className="field-name">Samples</span>
          <input type="number" min={2} max={2000} aria-label="Compare samples" value={limit} onChange={(e) => { const v = Math.max(2, Number(e.target.value)); setLimit(v); emit({ limit: v }); }} />
        </label>
        <label className="field">
          <span className="field-name">Train steps</span>
          <input type="number" min={0} aria-label="Train steps first" value={trainSteps} title="0: score the variants as they are (new parts untrained)" onChange={(e) => { const v = Math.max(0, Number(e.target.value)); setTrainSteps(v); emit({ trainSteps: v }); }} />
        </label>
      </div>
      {trainSteps > 0 && (
        <>
          <label className="field">
            <span className="field-name">Recipe</span>
            <select aria-label="Compare recipe" value={recipe} onChange={(e) => (setRecipe(e.target.value), emit({ recipe: e.target.value }))}>
              {(recipes.length ? recipes.filter((r) => r !== 'nextgpt-align') : [recipe]).map((r) => <option key={r} value={r}>{r}</option>)}
            </select>
          </label>
          <label className="check small">
            <input type="checkbox" checked={reinit} onChange={(e) => (setReinit(e.target.checked), emit({ reinit: e.target.checked }))} />
            Re-initialise the original too (all start equal)
          </label>
        </>
      )}
    </>
  );
}

/** The metric columns: the paper metric first, then the rest as the first variant lists them. */
function metricNames(compare: CompareState): string[] {
  const names = [...new Set(compare.variants.flatMap((v) => Object.keys(v.metrics ?? {})))];
  const paper = compare.variants.find((v) => v.paperMetric)?.paperMetric;
  return paper && names.includes(paper) ? [paper, ...names.filter((n) => n !== paper)] : names;
}

const fmt = (v: number | undefined) => (v === undefined ? '—' : Math.abs(v) >= 10 ? v.toFixed(2) : v.toFixed(3));

export function DatasetResults({ compare }: { compare: CompareState }) {
  const catalog = useComposer((s) => s.catalog);
  const [selected, setSelected] = useState<number | null>(null);
  const names = metricNames(compare);
  const title = (t: string) => catalog[t]?.title ?? t;
  const scored = compare.variants.filter((v) => v.metrics);
  const open = selected !== null ? compare.variants[selected] : undefined;
  return (
    <div className="dataset-results">
      <table className="compare-table" data-testid="compare-dataset-table">
        <thead>
          <tr>
            <th>Variant ({compare.nodeId})</th>
            {names.slice(0, 1).map((n) => <th key={n} className="paper-metric">{metricLabel(n)}</th>)}
            <th>Params</th>
            <th>Trainable</th>
            <th>Latency / sample</th>
            <th>Training</th>
            {names.slice(1).map((n) => <th key={n}>{metricLabel(n)}</th>)}
          </tr>
        </thead>
        <tbody>
          {compare.variants.map((v, vi) => {
            const metricCell = (n: string) => <td key={n} className="mono">{v.metrics ? fmt(v.metrics[n]) : <span className="muted">…</span>}</td>;
            return (
            <tr
              key={vi}
              data-testid={`compare-dataset-row-${vi}`}
              className={`clickable${selected === vi ? ' selected' : ''}`}
              title="Show this variant's misses"
              onClick={() => setSelected(selected === vi ? null : vi)}
            >
              <td>
                <strong>{title(v.type)}</strong>
                <div className="muted small mono">{vi === 0 ? 'current' : v.type}</div>
              </td>
              {names.slice(0, 1).map((n) => metricCell(n))}
              <td className="mono">{formatCount(v.totalParams)}</td>
              <td className="mono">{formatCount(v.trainableParams)}</td>
              <td className="mono">{v.latencyMs !== undefined ? `${v.latencyMs.toFixed(1)} ms` : '—'}</td>
              <td className="mono">{v.trainMs !== undefined ? `${v.trainSteps} steps, ${formatDuration(v.trainMs)}` : v.metrics ? 'as given' : '—'}</td>
              {names.slice(1).map((n) => metricCell(n))}
            </tr>
            );
          })}
        </tbody>
      </table>
      {scored.length > 0 && (
        <div className="metric-charts" data-testid="compare-dataset-charts">
          {names.map((n) => {
            const max = Math.max(...scored.map((v) => v.metrics![n] ?? 0), 1e-9);
            return (
              <figure key={n} className="metric-chart" aria-label={`${metricLabel(n)} per variant`}>
                <figcaption>{metricLabel(n)}</figcaption>
                {compare.variants.map((v, vi) => (
                  <div key={vi} className="bar-row" title={`${title(v.type)}: ${fmt(v.metrics?.[n])}`}>
                    <span className="bar-label">{title(v.type)}</span>
                    <span className="bar-track">
                      <span className="bar" style={{ width: `${(100 * (v.metrics?.[n] ?? 0)) / max}%`, background: BAR_COLORS[vi % BAR_COLORS.length] }} />
                    </span>
                    <span className="bar-value mono">{fmt(v.metrics?.[n])}</span>
                  </div>
                ))}
              </figure>
            );
          })}
        </div>
      )}
      {open && (
        <div className="misses" data-testid="compare-misses">
          <div className="field-name">
            Misses of {title(open.type)}: {open.notes?.split('\n')[0] ?? ''}
          </div>
          {open.misses?.length === 0 && <div className="muted small">No misses.</div>}
          <div className="miss-grid">
            {open.misses?.map((m) => (
              <div key={m.id} className="miss" data-testid="compare-miss">
                {m.imageDataUrl && <img src={m.imageDataUrl} alt={m.id} />}
                <div className="small">
                  <div><span className="muted">reference</span> {m.reference.slice(0, 3).join(' · ')}</div>
                  <div><span className="muted">prediction</span> <strong>{m.prediction || '(empty)'}</strong></div>
                  {m.score !== undefined && open.paperMetric && <div className="muted mono">{metricLabel(open.paperMetric)} {fmt(m.score)}</div>}
                </div>
              </div>
            ))}
          </div>
        </div>
      )}
    </div>
  );
}
