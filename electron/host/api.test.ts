import { mkdtempSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHostApi } from './api.js';
import type { MethodName, Reply } from './contract.js';
import { FilePolicy } from './files.js';

const root = mkdtempSync(join(tmpdir(), 'composer-host-'));
const templatesDir = join(root, 'graphs');
mkdirSync(templatesDir);
const doc = {
  format: 'composer.graph', version: 1, name: 'tiny',
  nodes: [{ id: 'a', type: 'io.text_input', typeVersion: 1, params: {}, frozen: false, adapters: [] }],
  edges: [], ui: { positions: { a: { x: 0, y: 0 } } },
};
writeFileSync(join(templatesDir, 'tiny.graph.json'), JSON.stringify(doc));
writeFileSync(join(templatesDir, 'broken.graph.json'), '{ not json');
const api = createHostApi({ mode: 'browser', dataDir: join(root, 'data'), templatesDir });
afterAll(() => api.close());
/** Typed view of api.call for the assertions (the API itself accepts any method name from the wire). */
const call = <M extends MethodName>(method: M, params: unknown) => api.call(method, params) as Promise<Reply<M>>;

describe('host api', () => {
  it('rejects unknown methods and bad payloads naming the field', async () => {
    expect(await api.call('nope', {})).toEqual({ ok: false, error: { code: 'invalid-request', message: "unknown method 'nope'" } });
    const r = await call('templates.get', { id: '../secret' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/templates\.get request: id: a template id is a file name/);
  });

  it('lists templates, skipping broken ones', async () => {
    const r = await call('templates.list', {});
    expect(r).toEqual({ ok: true, result: { templates: [{ id: 'tiny', name: 'tiny', nodeCount: 1, types: ['io.text_input'] }] } });
  });

  it('opens uploaded graph content and reports a broken file naming the field', async () => {
    const good = await call('graph.open', { source: 'content', name: 'g.graph.json', text: JSON.stringify(doc) });
    expect(good.ok).toBe(true);
    const bad = { ...doc, nodes: [{ ...doc.nodes[0], type: 42 }] };
    const r = await call('graph.open', { source: 'content', name: 'bad.graph.json', text: JSON.stringify(bad) });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('invalid-file');
      expect(r.error.message).toContain('bad.graph.json');
      expect(r.error.message).toMatch(/nodes\[0\]\.type/);
    }
    const notJson = await call('graph.open', { source: 'content', name: 'x.json', text: '{' });
    expect(!notJson.ok && notJson.error.message).toMatch(/'x\.json' is not valid JSON/);
  });

  it('browser mode has no dialogs and says so', async () => {
    const r = await call('graph.open', { source: 'dialog' });
    expect(!r.ok && r.error.message).toMatch(/browser mode does not have; upload the file instead/);
  });

  it('refuses paths outside the picked files and the data folder, naming the path', async () => {
    const r = await call('graph.open', { source: 'path', path: '/etc/passwd' });
    expect(r).toEqual({ ok: false, error: { code: 'file-policy', message: expect.stringContaining("'/etc/passwd' is outside") } });
  });

  it('saves into the data folder and autosaves/recovers', async () => {
    const saved = await call('graph.save', { document: doc, target: { kind: 'appData', fileName: 'mine' } });
    expect(saved.ok && !saved.result.cancelled && saved.result.path).toBe(join(api.files.dataDir, 'graphs', 'mine.graph.json'));
    expect(JSON.parse(readFileSync(join(api.files.dataDir, 'graphs', 'mine.graph.json'), 'utf8')).name).toBe('tiny');
    const escape = await call('graph.save', { document: doc, target: { kind: 'appData', fileName: '../x' } });
    expect(!escape.ok && escape.error.code).toBe('file-policy');

    expect(await call('autosave.recover', {})).toEqual({ ok: true, result: { found: null } });
    const w = await call('autosave.write', { document: doc });
    expect(w.ok).toBe(true);
    const rec = await call('autosave.recover', {});
    expect(rec.ok && rec.result.found?.document.name).toBe('tiny');
    await call('autosave.clear', {});
    expect(await call('autosave.recover', {})).toEqual({ ok: true, result: { found: null } });
  });

  it('imports a real ONNX model uploaded as content', async () => {
    const bytes = readFileSync(join(import.meta.dirname, '../../../shared/fixtures/mlp_projector.onnx'));
    const r = await call('model.importOnnx', { source: 'content', name: 'mlp_projector.onnx', base64: bytes.toString('base64') });
    expect(r.ok).toBe(true);
    if (r.ok && !r.result.cancelled) {
      expect(r.result.inputs.length).toBeGreaterThan(0);
      expect(r.result.outputs.length).toBeGreaterThan(0);
      expect(r.result.parameterCount).toBeGreaterThan(0);
      expect(r.result.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(r.result.path.startsWith(api.files.dataDir)).toBe(true);
    }
    const junk = await call('model.importOnnx', { source: 'content', name: 'junk.onnx', base64: Buffer.from('hello').toString('base64') });
    expect(!junk.ok && junk.error.message).toMatch(/junk\.onnx/);
  });

  it('reports the execution provider and which engine modules exist', async () => {
    const r = await call('engine.info', {});
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.result.availableProviders).toContain('cpu');
      expect(r.result.mode).toBe('browser');
      expect(typeof r.result.modules.run).toBe('boolean');
    }
  });

  it('counts parameters per node and in total, and a broken node gets an error instead of failing the rest', async () => {
    // BLIP-2 without its checkpoints (the weights are seeded), so only the graph's structure matters.
    const blip2 = JSON.parse(readFileSync(join(import.meta.dirname, '../../graphs/blip2.graph.json'), 'utf8')) as typeof doc & {
      nodes: Array<{ id: string; type: string; frozen: boolean; params: Record<string, unknown>; weights?: unknown }>;
    };
    for (const n of blip2.nodes) delete n.weights;
    const r = await call('graph.parameters', { document: blip2 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const node = (id: string) => r.result.nodes.find((n) => n.id === id)!;
    expect(node('qformer').params).toBeGreaterThan(10_000);
    expect(node('qformer').trainable).toBe(node('qformer').params);
    expect(node('vit')).toMatchObject({ frozen: true, trainable: 0 });
    expect(node('vit').params).toBeGreaterThan(10_000);
    expect(node('embed')).toMatchObject({ sharedWith: 'llm', params: 0 });
    expect(node('image')).toMatchObject({ onnx: false, params: 0 });
    expect(r.result.nodes.every((n) => n.error === undefined)).toBe(true);
    const all = r.result.nodes.reduce((s, n) => s + n.params + n.adapterParams, 0);
    expect(r.result.total).toMatchObject({ params: all, trainable: node('qformer').params });
    expect(r.result.total.trainablePercent).toBeCloseTo((100 * node('qformer').params) / all, 6);

    // Unfreezing the encoder adds its weights to the trainable total; a LoRA adds trainable weights to the frozen LLM.
    const edited = structuredClone(blip2);
    edited.nodes.find((n) => n.id === 'vit')!.frozen = false;
    (edited.nodes.find((n) => n.id === 'llm') as { adapters: unknown[] }).adapters = [{ id: 'l1', method: 'lora', config: { r: 4 } }];
    const e = await call('graph.parameters', { document: edited });
    expect(e.ok).toBe(true);
    if (!e.ok) return;
    const llm = e.result.nodes.find((n) => n.id === 'llm')!;
    expect(llm.adapterParams).toBeGreaterThan(0);
    expect(llm.trainable).toBe(llm.adapterParams);
    expect(e.result.total.trainable).toBe(node('qformer').params + node('vit').params + llm.adapterParams);

    // A Q-Former with an impossible width cannot be built: it alone has no count.
    const broken = structuredClone(blip2);
    broken.nodes.find((n) => n.id === 'qformer')!.params = { hidden_size: 7 };
    const b = await call('graph.parameters', { document: broken });
    expect(b.ok).toBe(true);
    if (!b.ok) return;
    const q = b.result.nodes.find((n) => n.id === 'qformer')!;
    expect(q.error).toMatch(/qformer/);
    expect(q.params).toBe(0);
    expect(b.result.nodes.find((n) => n.id === 'vit')!.params).toBe(node('vit').params);

    const bad = await call('graph.parameters', { document: { ...doc, nodes: 'x' } });
    expect(!bad.ok && bad.error.message).toMatch(/graph\.parameters request: document\.nodes/);
  });
});

describe('file policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'composer-policy-'));
  const policy = new FilePolicy(join(dir, 'data'));
  it('allows the data folder and picked files, rejects the rest by name', () => {
    expect(policy.check(join(policy.dataDir, 'a.json'))).toBe(join(policy.dataDir, 'a.json'));
    const outside = join(dir, 'outside.json');
    writeFileSync(outside, '{}');
    expect(() => policy.check(outside)).toThrow(`'${outside}' is outside`);
    policy.grantFile(outside);
    expect(policy.check(outside)).toBe(outside);
    expect(() => policy.check('relative.json')).toThrow(/not an absolute path/);
  });
  it('follows symlinks before deciding', () => {
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'x');
    const link = join(policy.dataDir, 'link.txt');
    symlinkSync(secret, link);
    expect(() => policy.check(link)).toThrow(/is outside/);
  });
  it('keeps app-chosen names inside the data folder', () => {
    expect(() => policy.dataPath('..', 'x')).toThrow(/outside the app's data folder/);
    expect(() => FilePolicy.plainFileName('a/b', 'file name')).toThrow(/plain file name/);
  });
});
