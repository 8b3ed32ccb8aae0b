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

  it('answers "not available yet" for engine parts that are not built', async () => {
    const info = await call('engine.info', {});
    if (!info.ok || info.result.modules.train) return; // the trainer exists: covered by its own tests
    const r = await call('train.start', { document: doc, config: { steps: 1, learningRate: 0.001, dataset: 'shapes' } });
    expect(r).toEqual({ ok: false, error: { code: 'not-available', message: expect.stringMatching(/^not available yet: the train engine/) } });
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
