import { describe, expect, it } from 'vitest';
import type { NodeTypeInfoWire } from '../../electron/host/contract.js';
import { documentFromFlow, flowFromDocument, copySelection } from './model.js';
import { createComposerStore } from './store.js';

const port = (name: string, kind: 'embeds' | 'image' | 'text', shape?: string[]) => ({ name, kind, ...(shape ? { shape } : {}) });
const type = (t: string, family: NodeTypeInfoWire['family'], inputs: ReturnType<typeof port>[], outputs: ReturnType<typeof port>[]): NodeTypeInfoWire => ({
  type: t, typeVersion: 1, family, title: t, aliases: [], inputs, outputs,
  params: [{ name: 'width', kind: 'int', default: 8, doc: 'width' }], doc: { summary: t, usedBy: [] },
});
const types = [
  type('io.image', 'io', [], [port('image', 'image', ['B', '3', 'H', 'W'])]),
  type('encoder.vit', 'encoder', [port('pixels', 'image')], [port('embeds', 'embeds', ['B', 'N', 'D'])]),
  type('projector.mlp', 'input-projector', [port('x', 'embeds')], [port('y', 'embeds')]),
  type('projector.qformer', 'input-projector', [port('x', 'embeds')], [port('y', 'embeds')]),
];

function setup() {
  const store = createComposerStore();
  store.getState().setCatalog(types);
  const s = () => store.getState();
  const img = s().addNode('io.image', { x: 0, y: 0 })!;
  const vit = s().addNode('encoder.vit', { x: 300, y: 0 })!;
  const mlp = s().addNode('projector.mlp', { x: 600, y: 0 })!;
  s().onConnect({ source: img, sourceHandle: 'out:image', target: vit, targetHandle: 'in:pixels' });
  s().onConnect({ source: vit, sourceHandle: 'out:embeds', target: mlp, targetHandle: 'in:x' });
  return { store, s, img, vit, mlp };
}

describe('graph store', () => {
  it('adds nodes with readable ids and connects compatible ports only, with shapes on edges', () => {
    const { s, vit, mlp, img } = setup();
    expect([img, vit, mlp]).toEqual(['image', 'vit', 'mlp']);
    expect(s().edges.map((e) => e.data?.shape)).toEqual(['[B,3,H,W]', '[B,N,D]']);
    s().onConnect({ source: img, sourceHandle: 'out:image', target: mlp, targetHandle: 'in:x' }); // image → embeds
    expect(s().edges).toHaveLength(2);
  });

  it('undoes and redoes every domain change, but not selection', () => {
    const { s, vit } = setup();
    s().setFrozen([vit], true);
    s().select([vit]);
    expect(s().past).toHaveLength(6);
    s().undo();
    expect(s().nodes.find((n) => n.id === vit)?.data.frozen).toBe(false);
    s().undo();
    s().undo();
    expect(s().edges).toHaveLength(0);
    s().redo();
    s().redo();
    s().redo();
    expect(s().edges).toHaveLength(2);
    expect(s().nodes.find((n) => n.id === vit)?.data.frozen).toBe(true);
    s().select([vit]);
    s().deleteSelection();
    expect(s().nodes.map((n) => n.id)).toEqual(['image', 'mlp']);
    expect(s().edges).toHaveLength(0);
    s().undo();
    expect(s().nodes.map((n) => n.id).sort()).toEqual(['image', 'mlp', 'vit']);
    expect(s().edges).toHaveLength(2);
  });

  it('replaces a node keeping its connections and shared params', () => {
    const { s, mlp, vit } = setup();
    s().setParam(mlp, 'width', 32);
    expect(s().replaceNode(mlp, 'projector.qformer')).toEqual([]);
    const node = s().nodes.find((n) => n.id === mlp)!;
    expect(node.data.type).toBe('projector.qformer');
    expect(node.data.params.width).toBe(32);
    expect(s().edges.some((e) => e.source === vit && e.target === mlp)).toBe(true);
  });

  it('copies and pastes the selection with fresh ids and internal edges', () => {
    const { s, vit, mlp } = setup();
    s().select([vit, mlp]);
    const payload = copySelection(s().nodes, s().edges)!;
    s().paste(payload);
    expect(s().nodes.map((n) => n.id)).toEqual(['image', 'vit', 'mlp', 'vit_2', 'mlp_2']);
    expect(s().edges.some((e) => e.source === 'vit_2' && e.target === 'mlp_2')).toBe(true);
    expect(s().nodes.filter((n) => n.selected).map((n) => n.id)).toEqual(['vit_2', 'mlp_2']);
  });

  it('round-trips the graph document, layout only in ui', () => {
    const { s } = setup();
    s().addAdapter('mlp', 'lora');
    const doc = documentFromFlow('g', s().nodes, s().edges);
    expect(doc.nodes.find((n) => n.id === 'mlp')?.adapters).toEqual([{ id: 'lora_1', method: 'lora', config: {} }]);
    expect(doc.edges).toContainEqual({ from: { node: 'vit', port: 'embeds' }, to: { node: 'mlp', port: 'x' } });
    const back = flowFromDocument(doc, s().catalog);
    expect(documentFromFlow('g', back.nodes, back.edges)).toEqual(doc);
  });
});
