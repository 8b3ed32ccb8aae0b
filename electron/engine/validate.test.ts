import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Catalog } from '../nodes/catalog.js';
import { type NodeTypeDef, type ResolvedShapes, downstreamKey } from '../nodes/types.js';
import { type GraphDocument, graphDocumentFromJson } from './document.js';
import { type Diagnostic, hasErrors, validateDocument } from './validate.js';
import { ShapeError, resolveShapes } from './widths.js';

// Small node types that exercise the validator (test fixtures, not product nodes).

const width = z.union([z.number().int().positive(), z.literal('auto')]).default('auto');

function lastOf(shape: Array<string | number> | undefined): number | undefined {
  const d = shape?.[shape.length - 1];
  return typeof d === 'number' ? d : undefined;
}

const encoderParams = z.strictObject({ width: z.number().int().positive().default(64) });
const encoder: NodeTypeDef<typeof encoderParams> = {
  info: {
    type: 't.encoder',
    typeVersion: 2,
    family: 'encoder',
    title: 'Test encoder',
    aliases: ['tenc'],
    inputs: [{ name: 'pixel_values', kind: 'image', shape: ['B', 3, 64, 64] }],
    outputs: [{ name: 'last_hidden_state', kind: 'embeds', shape: ['B', 65, 'D'] }],
    doc: { summary: 'test', usedBy: [] },
  },
  params: encoderParams,
  paramDocs: { width: 'width' },
  outputShapes: (p, inputs) => ({ last_hidden_state: [inputs.pixel_values?.[0] ?? 'B', 65, p.width] }),
  build: () => {
    throw new Error('not built in these tests');
  },
};

const projectorParams = z.strictObject({ d_in: width, d_out: width });
const projector: NodeTypeDef<typeof projectorParams> = {
  info: {
    type: 't.projector',
    typeVersion: 1,
    family: 'input-projector',
    title: 'Test projector',
    aliases: ['tproj'],
    inputs: [{ name: 'image_features', kind: 'embeds', shape: ['B', 'N', 'D'] }],
    outputs: [{ name: 'image_embeds', kind: 'embeds', shape: ['B', 'N', 'E'] }],
    doc: { summary: 'test', usedBy: [] },
  },
  params: projectorParams,
  paramDocs: { d_in: 'in', d_out: 'out' },
  inputShapes: (p): ResolvedShapes => ({ image_features: ['B', 'N', p.d_in === 'auto' ? 'D' : p.d_in] }),
  outputShapes(p, inputs) {
    const input = inputs.image_features;
    const dOut = p.d_out === 'auto' ? lastOf(inputs[downstreamKey('image_embeds')]) : p.d_out;
    if (dOut === undefined) throw new Error("d_out is 'auto' but nothing downstream fixes it");
    return { image_embeds: [input?.[0] ?? 'B', input?.[1] ?? 'N', dOut] };
  },
  build: () => {
    throw new Error('not built in these tests');
  },
};

const llmParams = z.strictObject({ width: z.number().int().positive().default(96) });
const llm: NodeTypeDef<typeof llmParams> = {
  info: {
    type: 't.llm',
    typeVersion: 1,
    family: 'llm',
    title: 'Test LLM',
    aliases: [],
    inputs: [
      { name: 'inputs_embeds', kind: 'embeds', shape: ['B', 'S', 'D'] },
      { name: 'attention_mask', kind: 'mask', shape: ['B', 'S'], optional: true },
    ],
    outputs: [{ name: 'logits', kind: 'logits', shape: ['B', 'S', 100] }],
    doc: { summary: 'test', usedBy: [] },
  },
  params: llmParams,
  paramDocs: { width: 'width' },
  inputShapes: (p) => ({ inputs_embeds: ['B', 'S', p.width], attention_mask: ['B', 'S'] }),
  outputShapes: (_p, inputs) => ({ logits: [inputs.inputs_embeds?.[0] ?? 'B', inputs.inputs_embeds?.[1] ?? 'S', 100] }),
  build: () => {
    throw new Error('not built in these tests');
  },
};

const headParams = z.strictObject({ classes: z.number().int().min(2) });
const head: NodeTypeDef<typeof headParams> = {
  info: {
    type: 't.head',
    typeVersion: 1,
    family: 'loss',
    title: 'Test head',
    aliases: [],
    inputs: [{ name: 'logits', kind: 'logits' }],
    outputs: [{ name: 'loss', kind: 'loss', shape: [] }],
    doc: { summary: 'test', usedBy: [] },
  },
  params: headParams,
  paramDocs: { classes: 'classes' },
  outputShapes: () => ({ loss: [] }),
  host: 't.head',
};

const textParams = z.strictObject({ text: z.string().default('') });
const text: NodeTypeDef<typeof textParams> = {
  info: {
    type: 't.text',
    typeVersion: 1,
    family: 'io',
    title: 'Test text',
    aliases: [],
    inputs: [],
    outputs: [{ name: 'text', kind: 'text' }],
    doc: { summary: 'test', usedBy: [] },
  },
  params: textParams,
  paramDocs: { text: 'text' },
  outputShapes: () => ({}),
  host: 't.text',
};

const embedParams = z.strictObject({ width: z.number().int().positive().default(96) });
const embed: NodeTypeDef<typeof embedParams> = {
  info: {
    type: 't.embed',
    typeVersion: 1,
    family: 'llm',
    title: 'Test token embedding',
    aliases: [],
    inputs: [],
    outputs: [{ name: 'inputs_embeds', kind: 'embeds', shape: ['B', 'S', 'D'] }],
    doc: { summary: 'test', usedBy: [] },
  },
  params: embedParams,
  paramDocs: { width: 'width' },
  outputShapes: (p) => ({ inputs_embeds: ['B', 7, p.width] }),
  build: () => {
    throw new Error('not built in these tests');
  },
};

// Concatenates image and token embeddings: both must share the width D, which the node does not fix itself.
const mergeParams = z.strictObject({});
const merge: NodeTypeDef<typeof mergeParams> = {
  info: {
    type: 't.merge',
    typeVersion: 1,
    family: 'llm',
    title: 'Test merge',
    aliases: [],
    inputs: [
      { name: 'image_features', kind: 'embeds', shape: ['B', 'N', 'D'] },
      { name: 'token_embeds', kind: 'embeds', shape: ['B', 'S', 'D'] },
    ],
    outputs: [{ name: 'inputs_embeds', kind: 'embeds', shape: ['B', 'T', 'D'] }],
    doc: { summary: 'test', usedBy: [] },
  },
  params: mergeParams,
  paramDocs: {},
  outputShapes: (_p, inputs) => ({ inputs_embeds: ['B', 'T', inputs.token_embeds?.[2] ?? 'D'] }),
  build: () => {
    throw new Error('not built in these tests');
  },
};

const catalog = new Catalog([encoder, projector, llm, head, text, embed, merge] as NodeTypeDef[]);

interface N {
  id: string;
  type: string;
  params?: Record<string, unknown>;
  typeVersion?: number;
  adapters?: Array<{ id: string; method: 'lora'; config: Record<string, unknown> }>;
}
type E = [string, string, string, string];

function doc(nodes: N[], edges: E[]): GraphDocument {
  return graphDocumentFromJson(
    {
      format: 'composer.graph',
      version: 1,
      name: 'test',
      nodes: nodes.map((n) => ({ typeVersion: n.type === 't.encoder' ? 2 : 1, ...n })),
      edges: edges.map(([a, ap, b, bp]) => ({ from: { node: a, port: ap }, to: { node: b, port: bp } })),
    },
    'test.graph.json',
  );
}

// A valid pipeline: image features (64 wide) → auto projector → LLM (96 wide). The encoder's own image input stays
// open; `only` drops that one expected diagnostic.
const pipelineNodes: N[] = [
  { id: 'vit', type: 't.encoder' },
  { id: 'proj', type: 't.projector' },
  { id: 'lm', type: 't.llm' },
  { id: 'cap', type: 't.head', params: { classes: 2 } },
];
const pipelineEdges: E[] = [
  ['vit', 'last_hidden_state', 'proj', 'image_features'],
  ['proj', 'image_embeds', 'lm', 'inputs_embeds'],
  ['lm', 'logits', 'cap', 'logits'],
];

function only(diags: Diagnostic[], excludePorts: string[] = ['pixel_values']): Diagnostic[] {
  // The test encoder's image input is left open in most documents; drop that one expected diagnostic.
  return diags.filter((d) => !(d.port && excludePorts.includes(d.port) && d.message.includes('not connected')));
}

function expectOne(diags: Diagnostic[], match: Partial<Diagnostic> & { text: string[] }): Diagnostic {
  const errors = only(diags);
  const hit = errors.find((d) => match.text.every((t) => d.message.includes(t)));
  if (!hit) throw new Error(`no diagnostic containing ${JSON.stringify(match.text)}; got:\n${JSON.stringify(errors, null, 2)}`);
  if (match.nodeId !== undefined) expect(hit.nodeId).toBe(match.nodeId);
  if (match.port !== undefined) expect(hit.port).toBe(match.port);
  if (match.severity !== undefined) expect(hit.severity).toBe(match.severity);
  return hit;
}

describe('width propagation', () => {
  it("resolves an 'auto' projector between two fixed widths", () => {
    const d = doc(pipelineNodes, pipelineEdges);
    expect(only(validateDocument(d, catalog))).toEqual([]);
    const shapes = resolveShapes(d, catalog);
    const proj = shapes.get('proj');
    expect(proj?.inputs.image_features).toEqual(['B', 65, 64]);
    expect(proj?.inputs[downstreamKey('image_embeds')]).toEqual(['B', 'S', 96]);
    expect(proj?.outputs.image_embeds).toEqual(['B', 65, 96]);
    expect(shapes.get('lm')?.outputs.logits).toEqual(['B', 65, 100]);
  });

  it('follows a change of the LLM width (swap the LLM, the projector resizes)', () => {
    const nodes = pipelineNodes.map((n) => (n.id === 'lm' ? { ...n, params: { width: 128 } } : n));
    const shapes = resolveShapes(doc(nodes, pipelineEdges), catalog);
    expect(shapes.get('proj')?.outputs.image_embeds).toEqual(['B', 65, 128]);
  });

  it('resolves an auto projector through a merge node whose width comes from the other branch', () => {
    const nodes: N[] = [
      { id: 'vit', type: 't.encoder' },
      { id: 'proj', type: 't.projector' },
      { id: 'tok', type: 't.embed', params: { width: 80 } },
      { id: 'merge', type: 't.merge' },
      { id: 'lm', type: 't.llm', params: { width: 80 } },
    ];
    const edges: E[] = [
      ['vit', 'last_hidden_state', 'proj', 'image_features'],
      ['proj', 'image_embeds', 'merge', 'image_features'],
      ['tok', 'inputs_embeds', 'merge', 'token_embeds'],
      ['merge', 'inputs_embeds', 'lm', 'inputs_embeds'],
    ];
    expect(only(validateDocument(doc(nodes, edges), catalog))).toEqual([]);
    expect(resolveShapes(doc(nodes, edges), catalog).get('proj')?.outputs.image_embeds).toEqual(['B', 65, 80]);

    const fixed = nodes.map((n) => (n.id === 'proj' ? { ...n, params: { d_out: 64 } } : n));
    const hit = expectOne(validateDocument(doc(fixed, edges), catalog), {
      nodeId: 'merge',
      text: ["inputs 'image_features' (64) and 'token_embeds' (80) must have the same width D"],
    });
    expect(hit.fix).toBe("set proj.d_out to 80 or 'auto'");
  });

  it('reports an auto width that nothing fixes', () => {
    const d = doc(pipelineNodes.slice(0, 2), pipelineEdges.slice(0, 1));
    expectOne(validateDocument(d, catalog), { nodeId: 'proj', text: ["node 'proj'", 'd_out', 'auto'] });
    expect(() => resolveShapes(d, catalog)).toThrow(ShapeError);
  });
});

describe('validateDocument diagnostics', () => {
  it('unknown node type, with a close match as the fix', () => {
    const d = doc([{ id: 'p', type: 't.projektor' }], []);
    const hit = expectOne(validateDocument(d, catalog), { nodeId: 'p', severity: 'error', text: ["unknown node type 't.projektor'"] });
    expect(hit.fix).toContain("'t.projector'");
  });

  it('an alias used as a type points at the real type id', () => {
    const hit = expectOne(validateDocument(doc([{ id: 'p', type: 'tproj' }], []), catalog), { text: ["unknown node type 'tproj'"] });
    expect(hit.fix).toContain("'t.projector'");
  });

  it('unknown param names it and suggests the near one', () => {
    const nodes = pipelineNodes.map((n) => (n.id === 'proj' ? { ...n, params: { d_ot: 96 } } : n));
    const hit = expectOne(validateDocument(doc(nodes, pipelineEdges), catalog), { nodeId: 'proj', text: ["unknown param 'd_ot'"] });
    expect(hit.fix).toBe("rename 'd_ot' to 'd_out'");
  });

  it('missing required param', () => {
    const nodes = pipelineNodes.map((n) => (n.id === 'cap' ? { ...n, params: {} } : n));
    expectOne(validateDocument(doc(nodes, pipelineEdges), catalog), { nodeId: 'cap', text: ["node 'cap' (t.head)", "missing param 'classes'"] });
  });

  it('param value failing its schema names node and param', () => {
    const nodes = pipelineNodes.map((n) => (n.id === 'proj' ? { ...n, params: { d_out: 'wide' } } : n));
    expectOne(validateDocument(doc(nodes, pipelineEdges), catalog), { nodeId: 'proj', text: ["node 'proj' (t.projector)", "param 'd_out'"] });
    const nodes2 = pipelineNodes.map((n) => (n.id === 'cap' ? { ...n, params: { classes: 1 } } : n));
    expectOne(validateDocument(doc(nodes2, pipelineEdges), catalog), { nodeId: 'cap', text: ["param 'classes'", '2'] });
  });

  it('duplicate node ids', () => {
    const d = doc([...pipelineNodes, { id: 'proj', type: 't.llm' }], pipelineEdges);
    expectOne(validateDocument(d, catalog), { nodeId: 'proj', text: ["duplicate node id 'proj'"] });
  });

  it('edge to an unknown node', () => {
    const d = doc(pipelineNodes, [...pipelineEdges, ['ghost', 'text', 'lm', 'attention_mask']]);
    expectOne(validateDocument(d, catalog), { nodeId: 'lm', port: 'attention_mask', text: ["no node 'ghost'"] });
  });

  it('edge to an unknown port names the node and suggests the port', () => {
    const edges: E[] = [['vit', 'last_hidden_state', 'proj', 'image_feature'], ...pipelineEdges.slice(1)];
    const hit = expectOne(validateDocument(doc(pipelineNodes, edges), catalog), {
      nodeId: 'proj',
      port: 'image_feature',
      text: ["node 'proj' (t.projector) has no input port 'image_feature'"],
    });
    expect(hit.fix).toBe("use port 'image_features'");
    const edges2: E[] = [['vit', 'hidden', 'proj', 'image_features'], ...pipelineEdges.slice(1)];
    expectOne(validateDocument(doc(pipelineNodes, edges2), catalog), { nodeId: 'vit', port: 'hidden', text: ['no output port'] });
  });

  it('unconnected required input port', () => {
    const d = doc(pipelineNodes, pipelineEdges.slice(1));
    const diags = validateDocument(d, catalog);
    const hit = diags.find((x) => x.nodeId === 'proj' && x.port === 'image_features');
    expect(hit?.message).toContain("required input 'image_features' (embeds) is not connected");
    // Optional inputs may stay open.
    expect(diags.some((x) => x.port === 'attention_mask')).toBe(false);
  });

  it('kind mismatch on an edge', () => {
    const d = doc([...pipelineNodes, { id: 'note', type: 't.text' }], [
      ['note', 'text', 'proj', 'image_features'],
      ...pipelineEdges.slice(1),
    ]);
    expectOne(validateDocument(d, catalog), { nodeId: 'proj', port: 'image_features', text: ['kind mismatch', 'text', 'embeds'] });
  });

  it('width mismatch suggests setting the projector width', () => {
    const nodes = pipelineNodes.map((n) => (n.id === 'proj' ? { ...n, params: { d_out: 64 } } : n));
    const hit = expectOne(validateDocument(doc(nodes, pipelineEdges), catalog), {
      nodeId: 'lm',
      port: 'inputs_embeds',
      text: ['proj.image_embeds [B,65,64]', 'dimension 2 is 64', 'needs 96'],
    });
    expect(hit.fix).toBe("set proj.d_out to 96 or 'auto'");
  });

  it('width mismatch with no width param suggests inserting a Linear projector', () => {
    const d = doc(
      [pipelineNodes[0], pipelineNodes[2]],
      [['vit', 'last_hidden_state', 'lm', 'inputs_embeds']],
    );
    const hit = expectOne(validateDocument(d, catalog), { nodeId: 'lm', text: ['dimension 2 is 64 but', 'needs 96'] });
    expect(hit.fix).toContain('insert a Linear projector');
    expect(hit.fix).toContain('96');
  });

  it('explicit input width that disagrees with upstream', () => {
    const nodes = pipelineNodes.map((n) => (n.id === 'proj' ? { ...n, params: { d_in: 32 } } : n));
    const hit = expectOne(validateDocument(doc(nodes, pipelineEdges), catalog), { nodeId: 'proj', text: ['dimension 2 is 64', 'needs 32'] });
    expect(hit.fix).toBe('set proj.d_in to 64');
  });

  it('cycle', () => {
    const d = doc(
      [
        { id: 'a', type: 't.projector', params: { d_out: 8 } },
        { id: 'b', type: 't.projector', params: { d_out: 8 } },
      ],
      [
        ['a', 'image_embeds', 'b', 'image_features'],
        ['b', 'image_embeds', 'a', 'image_features'],
      ],
    );
    const hit = expectOne(validateDocument(d, catalog), { text: ['cycle', 'a → b → a'] });
    expect(hit.nodeId).toBe('a');
    expect(() => resolveShapes(d, catalog)).toThrow(/cycle/);
  });

  it('more than one edge into one input', () => {
    const d = doc([...pipelineNodes, { id: 'vit2', type: 't.encoder' }], [
      ...pipelineEdges,
      ['vit2', 'last_hidden_state', 'proj', 'image_features'],
    ]);
    expectOne(validateDocument(d, catalog), { nodeId: 'proj', port: 'image_features', text: ['2 incoming edges', 'vit.last_hidden_state', 'vit2.last_hidden_state'] });
  });

  it('typeVersion newer than the catalogue is an error, older a warning', () => {
    const newer = doc([{ id: 'v', type: 't.encoder', typeVersion: 3 }], []);
    expectOne(validateDocument(newer, catalog), { nodeId: 'v', severity: 'error', text: ['typeVersion 3 is newer'] });
    const older = doc([{ id: 'v', type: 't.encoder', typeVersion: 1 }], []);
    expectOne(validateDocument(older, catalog), { nodeId: 'v', severity: 'warning', text: ['typeVersion 1'] });
  });

  it('adapters on a host-side node', () => {
    const d = doc([...pipelineNodes.slice(0, 3), { id: 'cap', type: 't.head', params: { classes: 2 }, adapters: [{ id: 'l', method: 'lora', config: {} }] }], pipelineEdges);
    expectOne(validateDocument(d, catalog), { nodeId: 'cap', text: ['host-side node', 'adapters'] });
  });

  it('a good pipeline has no errors', () => {
    expect(hasErrors(only(validateDocument(doc(pipelineNodes, pipelineEdges), catalog)))).toBe(false);
  });
});

describe('validateDocument with the app catalogue', () => {
  it('accepts text → chat prompt → text output', () => {
    const d = graphDocumentFromJson(
      {
        format: 'composer.graph',
        version: 1,
        nodes: [
          { id: 'q', type: 'io.text', params: { text: 'What shape is it?' } },
          { id: 'chat', type: 'prompt.chat', params: { style: 'vicuna' } },
          { id: 'out', type: 'io.text_output' },
        ],
        edges: [
          { from: { node: 'q', port: 'text' }, to: { node: 'chat', port: 'text' } },
          { from: { node: 'chat', port: 'text' }, to: { node: 'out', port: 'text' } },
        ],
      },
      'chat.graph.json',
    );
    expect(validateDocument(d)).toEqual([]);
  });
});
