import { describe, expect, it } from 'vitest';
import type { NodeTypeInfoWire } from '../../electron/host/contract.js';
import { chartData } from '../panels/chart-data.js';
import { cellKey, etaMs, formatCount, type CompareState, type ExportState, type RunState, type TrainState, idleCompare, idleExport, idleRun, idleTrain, reduceCompare, reduceExport, reduceRun, reduceTrain } from './jobs.js';
import { connectionProblem, createNode, nodePorts, portsKey } from './model.js';
import { createComposerStore } from './store.js';

const run = (type: Parameters<typeof reduceRun>[1]['type'], extra: object = {}) => ({ channel: 'run.event' as const, id: 'r', type, ...extra });

describe('run state', () => {
  it('follows node events: running with token progress, computed keeping the progress, cached, failed', () => {
    let s: RunState = { ...idleRun, id: 'r', status: 'running' };
    s = reduceRun(s, run('started', { node: 'llm' }));
    s = reduceRun(s, run('progress', { node: 'llm', done: 3, total: 16, message: 'token' }));
    expect(s.nodes.llm).toEqual({ status: 'running', done: 3, total: 16, unit: 'token' });
    s = reduceRun(s, run('computed', { node: 'llm', ms: 12 }));
    expect(s.nodes.llm).toEqual({ status: 'computed', ms: 12, done: 3, total: 16, unit: 'token' });
    s = reduceRun(s, run('cached', { node: 'vit' }));
    s = reduceRun(s, run('error', { node: 'image', message: 'no image' }));
    expect(s.nodes.vit.status).toBe('cached');
    expect(s.nodes.image).toEqual({ status: 'error', message: 'no image' });
    expect(s.status).toBe('running');
    s = reduceRun(s, run('result', { node: 'answer', text: 'a red square' }));
    s = reduceRun(s, run('done', { computed: ['llm'], cached: ['vit'], totalMs: 40 }));
    expect(s).toMatchObject({ status: 'done', results: [{ node: 'answer', text: 'a red square' }], computed: ['llm'], cached: ['vit'] });
  });

  it('a run-level error closes the run; events of another run are ignored', () => {
    const s: RunState = { ...idleRun, id: 'r', status: 'running' };
    expect(reduceRun(s, run('error', { message: 'bad graph' }))).toMatchObject({ status: 'error', message: 'bad graph' });
    expect(reduceRun(s, { ...run('cached', { node: 'x' }), id: 'other' })).toBe(s);
  });
});

describe('compare, train and export state', () => {
  it('fills the compare table per variant and image, with notes and parameters per variant', () => {
    let s: CompareState = { ...idleCompare, id: 'c', status: 'running', variants: [{ type: 'projector.qformer' }, { type: 'projector.mlp' }], imageNames: ['a.png'] };
    s = reduceCompare(s, { channel: 'compare.event', id: 'c', type: 'result', variant: 1, nodeType: 'projector.mlp', image: 0, text: 'hi', latencyMs: 5, totalParams: 100, trainableParams: 10, message: 'fresh weights' });
    expect(s.cells[cellKey(1, 0)]).toEqual({ text: 'hi', imageDataUrl: undefined, latencyMs: 5 });
    expect(s.variants[1]).toMatchObject({ type: 'projector.mlp', totalParams: 100, trainableParams: 10, notes: 'fresh weights' });
    s = reduceCompare(s, { channel: 'compare.event', id: 'c', type: 'done' });
    expect(s.status).toBe('done');
  });

  it('dataset mode: a result carries the variant\'s metrics, training and misses, and adds no image cell', () => {
    let s: CompareState = { ...idleCompare, id: 'c', status: 'starting', dataset: { name: 'shapes' }, variants: [{ type: 'projector.qformer' }, { type: 'projector.linear' }] };
    s = reduceCompare(s, { channel: 'compare.event', id: 'c', type: 'started', total: 20, task: 'caption', samples: 10 });
    expect(s.dataset).toEqual({ name: 'shapes', task: 'caption', samples: 10 });
    const miss = { id: 's1', reference: ['a red circle'], prediction: 'a blue square', score: 0 };
    s = reduceCompare(s, {
      channel: 'compare.event', id: 'c', type: 'result', variant: 1, nodeType: 'projector.linear', metrics: { cider: 0.7, bleu_4: 0.1 }, paperMetric: 'cider',
      latencyMs: 9, trainMs: 1200, trainSteps: 40, totalParams: 389, trainableParams: 6, misses: [miss], done: 20, message: '1 of 10 samples missed',
    });
    expect(s.variants[1]).toMatchObject({ metrics: { cider: 0.7, bleu_4: 0.1 }, paperMetric: 'cider', latencyMs: 9, trainMs: 1200, trainSteps: 40, misses: [miss] });
    expect(s.cells).toEqual({});
    expect(s.done).toBe(20);
  });

  it('collects losses, eval metrics and checkpoints, and estimates the time left', () => {
    let s: TrainState = { ...idleTrain, id: 't' };
    const ev = (type: Parameters<typeof reduceTrain>[1]['type'], extra: object) => ({ channel: 'train.event' as const, id: 't', type, ...extra });
    s = reduceTrain(s, ev('started', { step: 0, totalSteps: 10 }));
    s = reduceTrain(s, ev('step', { step: 1, loss: 2.5, elapsedMs: 100, totalSteps: 10 }));
    s = reduceTrain(s, ev('step', { step: 2, loss: 2.0, elapsedMs: 200 }));
    s = reduceTrain(s, ev('step', { step: 2, metrics: { eval_loss: 2.2, token_accuracy: 0.1 } }));
    s = reduceTrain(s, ev('checkpoint', { step: 2, checkpointPath: '/d/step-000002.safetensors' }));
    s = reduceTrain(s, ev('paused', { step: 2 }));
    expect(s).toMatchObject({ status: 'paused', steps: [1, 2], losses: [2.5, 2.0], checkpoints: ['/d/step-000002.safetensors'] });
    expect(s.evals).toEqual([{ step: 2, metrics: { eval_loss: 2.2, token_accuracy: 0.1 } }]);
    expect(etaMs(s)).toBe(800);
    const chart = chartData(s);
    expect(chart.names).toEqual(['eval_loss', 'token_accuracy']);
    expect(chart.data).toEqual([[1, 2], [2.5, 2.0], [null, 2.2], [null, 0.1]]);
    s = reduceTrain(s, ev('done', { step: 10, checkpointPath: '/d/final.safetensors' }));
    expect(s.status).toBe('done');
    expect(s.checkpoints).toContain('/d/final.safetensors');
  });

  it('records where an export went', () => {
    let s: ExportState = { ...idleExport, id: 'e' };
    s = reduceExport(s, { channel: 'export.event', id: 'e', type: 'started', message: 'exporting' });
    s = reduceExport(s, { channel: 'export.event', id: 'e', type: 'done', path: '/x/out', files: [{ path: 'graph.json', bytes: 10 }] });
    expect(s).toMatchObject({ status: 'done', path: '/x/out', files: [{ path: 'graph.json', bytes: 10 }], log: ['exporting'] });
  });
});

describe('ports reported for a node', () => {
  const imported: NodeTypeInfoWire = {
    type: 'model.onnx_import', typeVersion: 1, family: 'imported', title: 'Imported', aliases: [], inputs: [], outputs: [],
    params: [{ name: 'path', kind: 'string', default: '', doc: '' }], doc: { summary: '', usedBy: [] },
  };
  const vit: NodeTypeInfoWire = { ...imported, type: 'encoder.vit', family: 'encoder', inputs: [], outputs: [{ name: 'embeds', kind: 'embeds' }], params: [] };
  const mlp: NodeTypeInfoWire = { ...imported, type: 'projector.mlp', family: 'input-projector', inputs: [{ name: 'x', kind: 'embeds' }], outputs: [], params: [] };

  it('an imported node shows the handles the host reported, only for the params they were asked for', () => {
    const store = createComposerStore();
    store.getState().setCatalog([imported, vit, mlp]);
    const id = store.getState().addNode('model.onnx_import', { x: 0, y: 0 })!;
    store.getState().setParam(id, 'path', '/m/a.onnx');
    const node = () => store.getState().nodes.find((n) => n.id === id)!;
    expect(nodePorts(store.getState().catalog, node()).inputs).toEqual([]);
    const logged = store.getState().past.length;
    store.getState().setNodePorts(id, { inputs: [{ name: 'image_features', kind: 'embeds' }], outputs: [{ name: 'out', kind: 'embeds' }] });
    // Reporting ports is not an undoable edit.
    expect(store.getState().past.length).toBe(logged);
    expect(node().data.ports?.key).toBe(portsKey(node().data));
    expect(nodePorts(store.getState().catalog, node()).inputs.map((p) => p.name)).toEqual(['image_features']);
    const vitId = store.getState().addNode('encoder.vit', { x: 0, y: 0 })!;
    const c = { source: vitId, sourceHandle: 'out:embeds', target: id, targetHandle: 'in:image_features' };
    expect(connectionProblem(store.getState().catalog, store.getState().nodes, store.getState().edges, c)).toBeNull();
    store.getState().setParam(id, 'path', '/m/b.onnx');
    expect(nodePorts(store.getState().catalog, node()).inputs).toEqual([]);
    expect(createNode(imported, 'n', { x: 0, y: 0 }).data.ports).toBeUndefined();
  });
});

describe('replacing a node', () => {
  it("drops the old type's weights file (its tensors do not fit the new type)", async () => {
    const { replaceNodeType } = await import('./model.js');
    const info = (type: string): NodeTypeInfoWire => ({
      type, typeVersion: 1, family: 'input-projector', title: type, aliases: [], inputs: [], outputs: [], params: [], doc: { summary: '', usedBy: [] },
    });
    const node = { ...createNode(info('projector.qformer'), 'qformer', { x: 0, y: 0 }) };
    node.data = { ...node.data, weights: { path: 'w.safetensors', sha256: 'a'.repeat(64) } };
    const r = replaceNodeType({ 'projector.qformer': info('projector.qformer'), 'projector.mlp': info('projector.mlp') }, [node], [], 'qformer', 'projector.mlp');
    expect(r.nodes[0].data.type).toBe('projector.mlp');
    expect(r.nodes[0].data.weights).toBeUndefined();
  });
});

describe('formatCount', () => {
  it('shows three significant digits with K, M and B', () => {
    expect(formatCount(undefined)).toBe('—');
    expect(formatCount(0)).toBe('0');
    expect(formatCount(512)).toBe('512');
    expect(formatCount(86_412)).toBe('86.4K');
    expect(formatCount(1_200_000)).toBe('1.2M');
    expect(formatCount(1_234_567)).toBe('1.23M');
    expect(formatCount(303_000_000)).toBe('303M');
    expect(formatCount(6_738_415_616)).toBe('6.74B');
    expect(formatCount(999_950)).toBe('1M');
  });
});
