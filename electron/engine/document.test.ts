import { describe, expect, it } from 'vitest';
import { GraphDocumentError, graphDocumentFromJson, parseGraphDocument } from './document.js';

const good = {
  format: 'composer.graph',
  version: 1,
  name: 'blip2-tiny',
  nodes: [
    { id: 'img', type: 'io.image', typeVersion: 1, params: { size: 64 }, frozen: false, adapters: [] },
    {
      id: 'llm',
      type: 'llm.decoder',
      typeVersion: 1,
      params: { preset: 'tiny' },
      frozen: true,
      adapters: [{ id: 'lora1', method: 'lora', config: { r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] } }],
      weights: { path: 'weights/llm.safetensors', sha256: 'a'.repeat(64) },
    },
  ],
  edges: [{ from: { node: 'img', port: 'pixel_values' }, to: { node: 'llm', port: 'inputs_embeds' } }],
  ui: { positions: { img: { x: 0, y: 10 } }, groups: [{ id: 'g1', title: 'Vision', nodeIds: ['img'] }], viewport: { x: 0, y: 0, zoom: 1 } },
};

function expectError(text: string, ...parts: string[]): void {
  try {
    parseGraphDocument(text, 'bad.graph.json');
  } catch (e) {
    expect(e).toBeInstanceOf(GraphDocumentError);
    for (const p of parts) expect((e as Error).message).toContain(p);
    return;
  }
  throw new Error('expected parseGraphDocument to fail');
}

describe('parseGraphDocument', () => {
  it('parses a good document and keeps params by name', () => {
    const doc = parseGraphDocument(JSON.stringify(good), 'good.graph.json');
    expect(doc.nodes.map((n) => n.id)).toEqual(['img', 'llm']);
    expect(doc.nodes[1].adapters[0]).toEqual({ id: 'lora1', method: 'lora', config: { r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] } });
    expect(doc.nodes[1].weights?.sha256).toBe('a'.repeat(64));
    expect(doc.ui.groups[0].nodeIds).toEqual(['img']);
    expect(doc.seed).toBe(0);
  });

  it('fills defaults for a minimal hand-written document', () => {
    const doc = graphDocumentFromJson(
      { format: 'composer.graph', version: 1, nodes: [{ id: 'a', type: 'io.text' }] },
      'min.graph.json',
    );
    expect(doc.nodes[0]).toEqual({ id: 'a', type: 'io.text', typeVersion: 1, params: {}, frozen: false, adapters: [] });
    expect(doc.edges).toEqual([]);
    expect(doc.ui).toEqual({ positions: {}, groups: [] });
  });

  it('names the file and the JSON path of a bad field', () => {
    const bad = structuredClone(good);
    (bad.nodes[1] as Record<string, unknown>).frozen = 'yes';
    expectError(JSON.stringify(bad), 'bad.graph.json', '$.nodes[1].frozen', "(node 'llm')");
  });

  it('rejects an unknown adapter method at its path', () => {
    const bad = structuredClone(good);
    bad.nodes[1].adapters[0].method = 'dora';
    expectError(JSON.stringify(bad), '$.nodes[1].adapters[0].method');
  });

  it('rejects unknown fields on a node, naming them', () => {
    const bad = structuredClone(good);
    (bad.nodes[0] as Record<string, unknown>).parms = {};
    expectError(JSON.stringify(bad), '$.nodes[0]', "'parms'");
  });

  it('rejects layout outside ui', () => {
    const bad = structuredClone(good);
    (bad.nodes[0] as Record<string, unknown>).position = { x: 1, y: 2 };
    expectError(JSON.stringify(bad), "'position'");
  });

  it('rejects a bad edge reference shape', () => {
    const bad = structuredClone(good);
    (bad.edges[0].to as Record<string, unknown>).port = '';
    expectError(JSON.stringify(bad), '$.edges[0].to.port');
  });

  it('reports invalid JSON, wrong format and versions', () => {
    expectError('{ "format": ', 'bad.graph.json', 'not valid JSON');
    expectError(JSON.stringify({ ...good, format: 'comfy' }), '$.format must be "composer.graph"');
    expectError(JSON.stringify({ ...good, version: 7 }), 'version 7', 'newer Composer');
    expectError(JSON.stringify({ ...good, version: 'one' }), '$.version');
    expectError('[]', '$ must be a JSON object');
  });

  it('rejects a node id that cannot be a handle prefix', () => {
    const bad = structuredClone(good);
    bad.nodes[0].id = 'my node:1';
    expectError(JSON.stringify(bad), '$.nodes[0].id');
  });

  it('checks the weights hash format', () => {
    const bad = structuredClone(good);
    bad.nodes[1].weights = { path: 'w.safetensors', sha256: 'xyz' };
    expectError(JSON.stringify(bad), '$.nodes[1].weights.sha256', 'sha256');
  });
});
