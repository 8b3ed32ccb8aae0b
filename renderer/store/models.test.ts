import { describe, expect, it } from 'vitest';
import type { GraphDocumentWire, NodeTypeInfoWire } from '../../electron/host/contract.js';
import { idleRun } from './jobs.js';
import { flowFromDocument } from './model.js';
import { dtypeLabel, folderLoading, LOADING_WEIGHTS, memoryEstimate, uploadable } from './models.js';
import { createComposerStore } from './store.js';

const port = (name: string, kind: 'text' | 'tokens') => ({ name, kind });
const type = (t: string, inputs: ReturnType<typeof port>[], outputs: ReturnType<typeof port>[]): NodeTypeInfoWire => ({
  type: t, typeVersion: 1, family: 'io', title: t, aliases: [], inputs, outputs, params: [], doc: { summary: t, usedBy: [] },
});
const catalog = [type('io.text', [], [port('text', 'text')]), type('text.tokenize', [port('text', 'text')], [port('input_ids', 'tokens')])];
const node = (id: string, t: string) => ({ id, type: t, typeVersion: 1, params: {}, frozen: false, adapters: [], weights: { path: '/models/m' } });
const imported: GraphDocumentWire = {
  format: 'composer.graph', version: 1, name: 'm (imported)',
  nodes: [node('prompt', 'io.text'), node('tokenize', 'text.tokenize')],
  edges: [{ from: { node: 'prompt', port: 'text' }, to: { node: 'tokenize', port: 'text' } }],
  ui: { positions: { prompt: { x: 0, y: 0 }, tokenize: { x: 260, y: 40 } } },
};

describe('an imported graph merged into the canvas', () => {
  it('keeps free ids, suffixes taken ones, follows its edges, lands at the drop point and is one undo step', () => {
    const store = createComposerStore();
    const s = () => store.getState();
    s().setCatalog(catalog);
    s().addNode('io.text', { x: 0, y: 0 }); // id 'text'
    const first = flowFromDocument(imported, s().catalog);
    s().merge(first, { x: 500, y: 300 }, 'import m');
    s().merge(flowFromDocument(imported, s().catalog), { x: 900, y: 600 }, 'import m');
    expect(s().nodes.map((n) => n.id)).toEqual(['text', 'prompt', 'tokenize', 'prompt_2', 'tokenize_2']);
    expect(s().nodes.find((n) => n.id === 'prompt_2')?.position).toEqual({ x: 900, y: 600 });
    expect(s().nodes.find((n) => n.id === 'tokenize_2')?.position).toEqual({ x: 1160, y: 640 });
    expect(s().edges.map((e) => `${e.source}->${e.target}`)).toEqual(['prompt->tokenize', 'prompt_2->tokenize_2']);
    expect(s().edges[1].data?.kind).toBe('text');
    expect(s().nodes.filter((n) => n.selected).map((n) => n.id)).toEqual(['prompt_2', 'tokenize_2']);
    expect(s().nodes[3].data.weights).toEqual({ path: '/models/m' });
    s().undo();
    expect(s().nodes.map((n) => n.id)).toEqual(['text', 'prompt', 'tokenize']);
  });
});

describe('Models panel helpers', () => {
  it('estimates 2 × the float32 bytes, whatever the stored dtype', () => {
    expect(memoryEstimate(1_000_000)).toBe(8_000_000);
    expect(dtypeLabel(['bfloat16', 'float32'])).toBe('BF16 + F32');
    expect(dtypeLabel([])).toBe('—');
  });

  it("sums the run's weight loading of the folder's nodes while any still reads", () => {
    const flow = flowFromDocument(imported, {});
    const run = {
      ...idleRun,
      nodes: {
        prompt: { status: 'running' as const, done: 10, total: 40, unit: LOADING_WEIGHTS },
        tokenize: { status: 'computed' as const, done: 60, total: 60, unit: LOADING_WEIGHTS },
      },
    };
    expect(folderLoading(flow.nodes, run, '/models/m')).toEqual({ done: 70, total: 100 });
    expect(folderLoading(flow.nodes, run, '/models/other')).toBeNull();
    const done = { ...run, nodes: { ...run.nodes, prompt: { ...run.nodes.prompt, status: 'computed' as const, done: 40 } } };
    expect(folderLoading(flow.nodes, done, '/models/m')).toBeNull();
  });

  it('uploads neither hidden entries nor other weight formats beside safetensors', () => {
    const paths = ['config.json', 'model.safetensors', 'pytorch_model.bin', '.gitattributes', '.cache/huggingface/x', 'sub/tokenizer.json'];
    expect(uploadable(paths.map((path) => ({ path }))).map((f) => f.path)).toEqual(['config.json', 'model.safetensors', 'sub/tokenizer.json']);
    expect(uploadable([{ path: 'config.json' }, { path: 'pytorch_model.bin' }]).map((f) => f.path)).toEqual(['config.json', 'pytorch_model.bin']);
  });
});
