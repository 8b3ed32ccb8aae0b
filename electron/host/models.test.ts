// Import model folder… through the host API: by typed path (browser), dialog and drop (Electron), as an upload,
// from a hub cache; the Models list in the data folder; bad folders refused naming the file.

import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHostApi } from './api.js';
import type { MethodName, Reply } from './contract.js';
import { tinyLlamaParameters, writeTinyLlamaFolder } from '../formats/hf/tiny-llama.test-support.js';

const root = mkdtempSync(join(tmpdir(), 'composer-models-'));
const templatesDir = join(root, 'graphs');
mkdirSync(templatesDir);
const llama = writeTinyLlamaFolder(join(root, 'tiny-llama'));
const browser = createHostApi({ mode: 'browser', dataDir: join(root, 'data'), templatesDir });
let picked: string | null = null;
const electron = createHostApi({
  mode: 'electron',
  dataDir: join(root, 'data-electron'),
  templatesDir,
  dialogs: { openFile: async () => null, saveFile: async () => null, pickFolder: async () => picked },
});
afterAll(async () => {
  await browser.close();
  await electron.close();
});

type Api = typeof browser;
const call = <M extends MethodName>(api: Api, method: M, params: unknown) => api.call(method, params) as Promise<Reply<M>>;
function ok<M extends MethodName>(r: Reply<M>) {
  if (!r.ok) throw new Error(`expected success, got ${r.error.code}: ${r.error.message}`);
  return r.result;
}
function imported(r: Reply<'model.importFolder'>) {
  const res = ok(r);
  if (res.cancelled) throw new Error('the import was cancelled');
  return res;
}

describe('model folders in the host', () => {
  it('imports a typed path in browser mode: a runnable graph, listed with params, dtype and size', async () => {
    const r = imported(await call(browser, 'model.importFolder', { source: 'path', path: `  ${llama}/config.json ` }));
    expect(r.document.nodes.map((n) => n.type)).toEqual(expect.arrayContaining(['io.text', 'text.tokenize', 'llm.embed_tokens', 'llm.decoder', 'io.text_output']));
    const llm = r.document.nodes.find((n) => n.type === 'llm.decoder');
    expect(llm?.weights?.hf?.architecture).toBe('llama');
    expect(llm?.weights?.path).toBe(llama);
    expect(r.model).toMatchObject({
      dir: llama,
      name: 'tiny-llama',
      class: 'LlamaForCausalLM',
      parameters: tinyLlamaParameters(),
      dtypes: ['bfloat16'],
      uploaded: false,
      fileCount: 5,
    });
    expect(r.model.diskBytes).toBeGreaterThan(r.model.weightBytes);
    const list = ok(await call(browser, 'models.list', {}));
    expect(list.models.map((m) => m.dir)).toEqual([llama]);
    expect(list.memory.totalBytes).toBeGreaterThan(0);
    expect(list.memory.freeBytes).toBeLessThanOrEqual(list.memory.totalBytes);
    expect(list.uploadLimitBytes).toBe(512 * 2 ** 20);
    // Importing again refreshes the entry instead of listing the folder twice.
    imported(await call(browser, 'model.importFolder', { source: 'path', path: llama }));
    expect(ok(await call(browser, 'models.list', {})).models).toHaveLength(1);
  });

  it('refuses a broken config.json naming the file, a relative path, and a folder without weights', async () => {
    const bad = join(root, 'bad');
    cpSync(llama, bad, { recursive: true });
    writeFileSync(join(bad, 'config.json'), '{ "model_type": "llama", ');
    const r = await call(browser, 'model.importFolder', { source: 'path', path: bad });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('invalid-file');
      expect(r.error.message).toContain('config.json');
    }
    const rel = await call(browser, 'model.importFolder', { source: 'path', path: 'models/llama' });
    expect(!rel.ok && rel.error.message).toMatch(/'models\/llama' is not an absolute path/);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    const none = await call(browser, 'model.importFolder', { source: 'path', path: empty });
    expect(!none.ok && none.error.message).toMatch(/config\.json/);
    // Failed imports are not listed.
    expect(ok(await call(browser, 'models.list', {})).models.map((m) => m.dir)).toEqual([llama]);
  });

  it('removes a folder from the list, leaving its files', async () => {
    expect(ok(await call(browser, 'models.remove', { dir: llama })).models).toEqual([]);
    expect(readdirSync(llama)).toContain('model.safetensors');
    const again = await call(browser, 'models.remove', { dir: llama });
    expect(!again.ok && again.error.message).toMatch(/is not in the Models list/);
  });

  it('imports a folder uploaded in chunks into the data folder, and refuses chunks out of order', async () => {
    const uploadId = 'upload-0001';
    const put = (path: string, offset: number, bytes: Buffer) =>
      call(browser, 'model.uploadFile', { uploadId, folder: 'dropped llama', path, offset, base64: bytes.toString('base64') });
    for (const name of readdirSync(llama)) {
      const bytes = readFileSync(join(llama, name));
      const half = Math.floor(bytes.length / 2);
      ok(await put(name, 0, bytes.subarray(0, half)));
      ok(await put(name, half, bytes.subarray(half)));
    }
    const gap = await put('config.json', 5, Buffer.from('x'));
    expect(!gap.ok && gap.error.message).toMatch(/'config\.json': a chunk at byte 5 arrived, but the file holds \d+ bytes/);
    const escape = await put('../evil.json', 0, Buffer.from('{}'));
    expect(!escape.ok && escape.error.code).toBe('file-policy');
    const r = imported(await call(browser, 'model.importFolder', { source: 'upload', uploadId, folder: 'dropped llama' }));
    expect(r.model.uploaded).toBe(true);
    expect(r.model.name).toBe('dropped llama');
    expect(r.model.dir.startsWith(browser.files.dataDir)).toBe(true);
    // The same folder dropped again is kept once: the second copy is deleted and the first one imported.
    for (const name of readdirSync(llama)) {
      ok(await call(browser, 'model.uploadFile', { uploadId: 'upload-0002', folder: 'dropped llama', path: name, offset: 0, base64: readFileSync(join(llama, name)).toString('base64') }));
    }
    const again = imported(await call(browser, 'model.importFolder', { source: 'upload', uploadId: 'upload-0002', folder: 'dropped llama' }));
    expect(again.model.dir).toBe(r.model.dir);
    expect(readdirSync(join(browser.files.dataDir, 'models'))).toEqual(['upload-0001']);
    expect(ok(await call(browser, 'models.list', {})).models.filter((m) => m.uploaded)).toHaveLength(1);
    const unknown = await call(browser, 'model.importFolder', { source: 'upload', uploadId: 'upload-9999', folder: 'x' });
    expect(!unknown.ok && unknown.error.message).toMatch(/no files of the dropped folder 'x' arrived/);
  });

  it('moves a damaged list aside, says so once, and starts a fresh one', async () => {
    const path = join(browser.files.dataDir, 'models.json');
    writeFileSync(path, JSON.stringify({ format: 'composer.models', version: 1, models: [{ dir: 7 }] }));
    const list = ok(await call(browser, 'models.list', {}));
    expect(list.models).toEqual([]);
    expect(list.warning).toMatch(/models\.json' was damaged \(fields: models\[0\]\.dir: .*kept as '.*models\.json\.damaged-/);
    expect(ok(await call(browser, 'models.list', {})).warning).toBeUndefined();
    expect(readdirSync(browser.files.dataDir).some((n) => n.startsWith('models.json.damaged-'))).toBe(true);
  });

  it('Electron: a dialog pick and a drop are readable, any other path is refused; a hub-cache snapshot reads its blobs', async () => {
    // The hub cache: snapshots/<rev>/ holds links into the model's own blobs/.
    const repo = join(root, 'hub', 'models--tiny--llama');
    const snapshot = join(repo, 'snapshots', 'abc123');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    const source = join(root, 'hub-src');
    cpSync(llama, source, { recursive: true });
    for (const name of readdirSync(source)) {
      renameSync(join(source, name), join(repo, 'blobs', `blob-${name}`));
      symlinkSync(join('..', '..', 'blobs', `blob-${name}`), join(snapshot, name));
    }
    const refused = await call(electron, 'model.importFolder', { source: 'path', path: snapshot });
    expect(!refused.ok && refused.error.code).toBe('file-policy');
    picked = snapshot;
    const r = imported(await call(electron, 'model.importFolder', { source: 'dialog' }));
    expect(r.model.class).toBe('LlamaForCausalLM');
    expect(electron.files.check(join(snapshot, 'model.safetensors'))).toBe(join(repo, 'blobs', 'blob-model.safetensors'));
    expect(() => electron.files.check(join(root, 'hub'))).toThrow(/outside the files you picked/);
    picked = null;
    expect(ok(await call(electron, 'model.importFolder', { source: 'dialog' }))).toEqual({ cancelled: true });

    const dropped = join(root, 'dropped');
    cpSync(llama, dropped, { recursive: true });
    electron.files.grantDropped(join(dropped, 'config.json'));
    expect(imported(await call(electron, 'model.importFolder', { source: 'path', path: join(dropped, 'config.json') })).model.dir).toBe(dropped);
  });
});
