// Jobs through the whole host: contract validation, file policy, the worker thread and the real engine.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createHostApi } from './api.js';
import type { HostEvent, MethodName, Reply, RunEvent } from './contract.js';

const root = mkdtempSync(join(tmpdir(), 'composer-jobs-'));
const templatesDir = join(import.meta.dirname, '..', '..', 'graphs');
const dataDir = join(root, 'data');
const api = createHostApi({ mode: 'browser', dataDir, templatesDir });
afterAll(() => api.close());
const call = <M extends MethodName>(method: M, params: unknown) => api.call(method, params) as Promise<Reply<M>>;

/** Collects a job's events until its closing one. */
function eventsOf(channel: HostEvent['channel'], isLast: (e: HostEvent) => boolean) {
  const seen: HostEvent[] = [];
  let id: string | null = null;
  let finish: (events: HostEvent[]) => void = () => undefined;
  const done = new Promise<HostEvent[]>((resolve) => (finish = resolve));
  const stop = api.onEvent((e) => {
    if (e.channel !== channel) return;
    seen.push(e);
    if (id && e.id === id && isLast(e)) {
      stop();
      finish(seen.filter((x) => x.id === id));
    }
  });
  return { setId: (v: string) => (id = v), done };
}

const closesRun = (e: HostEvent) => e.channel === 'run.event' && (e.type === 'done' || e.type === 'cancelled' || (e.type === 'error' && !e.node));

describe('host jobs', () => {
  it('runs the BLIP-2 template on an uploaded image and streams node events and the caption', async () => {
    const blip2 = JSON.parse(readFileSync(join(templatesDir, 'blip2.graph.json'), 'utf8')) as unknown;
    const png = await sharp({ create: { width: 48, height: 48, channels: 3, background: '#c33' } }).png().toBuffer();
    const watch = eventsOf('run.event', closesRun);
    const r = await call('run.start', {
      document: blip2,
      inputs: { image: { name: 'red.png', base64: png.toString('base64') }, prompt: 'Describe the image.' },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    watch.setId(r.result.id);
    const events = (await watch.done) as RunEvent[];
    expect(events.find((e) => e.type === 'result')).toMatchObject({ node: 'answer', text: expect.any(String) });
    expect(events.at(-1)?.type).toBe('done');
    expect(events.filter((e) => e.type === 'computed').map((e) => e.node)).toContain('qformer');
  });

  it('cancels a run mid-generation: the shared flag gets through while ORT keeps the worker busy', async () => {
    const blip2 = JSON.parse(readFileSync(join(templatesDir, 'blip2.graph.json'), 'utf8')) as { nodes: Array<{ id: string; params: object }> };
    const llm = blip2.nodes.find((n) => n.id === 'llm')!;
    llm.params = { ...llm.params, max_new_tokens: 120, temperature: 1, sample_seed: 7 };
    const png = await sharp({ create: { width: 48, height: 48, channels: 3, background: '#3c3' } }).png().toBuffer();
    let id: string | null = null;
    let asked = false;
    const events: RunEvent[] = [];
    const closed = new Promise<void>((resolve) => {
      const stop = api.onEvent((e) => {
        if (e.channel !== 'run.event' || e.id !== id) return;
        events.push(e);
        // Cancel from the host's thread as soon as the LLM generates (the worker is inside its token loop).
        if (e.type === 'progress' && e.node === 'llm' && !asked) {
          asked = true;
          void call('run.cancel', { id });
        }
        if (closesRun(e)) {
          stop();
          resolve();
        }
      });
    });
    const r = await call('run.start', { document: blip2, inputs: { image: { name: 'g.png', base64: png.toString('base64') }, prompt: 'cancel' } });
    expect(r.ok).toBe(true);
    if (r.ok) id = r.result.id;
    await closed;
    const tokens = Math.max(0, ...events.filter((e) => e.type === 'progress' && e.node === 'llm').map((e) => e.done ?? 0));
    expect(events.at(-1)?.type).toBe('cancelled');
    expect(tokens).toBeLessThan(120);
  });

  it('refuses a run image path outside the picked files', async () => {
    const blip2 = JSON.parse(readFileSync(join(templatesDir, 'blip2.graph.json'), 'utf8')) as unknown;
    const r = await call('run.start', { document: blip2, inputs: { image: { path: '/etc/hostname' } } });
    expect(r).toEqual({ ok: false, error: { code: 'file-policy', message: expect.stringContaining("'/etc/hostname' is outside") } });
  });

  it("answers an imported model's real ports, and checks its path against the file policy", async () => {
    const fixture = '/work/shared/fixtures/mlp_projector.onnx';
    if (!existsSync(fixture)) return;
    mkdirSync(join(dataDir, 'models'), { recursive: true });
    const inData = join(dataDir, 'models', 'mlp.onnx');
    copyFileSync(fixture, inData);
    const r = await call('catalog.ports', { type: 'model.onnx_import', params: { path: inData } });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.result.inputs.length).toBeGreaterThan(0);
      expect(r.result.outputs.length).toBeGreaterThan(0);
    }
    const outside = await call('catalog.ports', { type: 'model.onnx_import', params: { path: fixture } });
    expect(!outside.ok && outside.error.code).toBe('file-policy');
    const plain = await call('catalog.ports', { type: 'projector.mlp', params: {} });
    expect(plain.ok && plain.result.outputs.map((p) => p.name)).toContain('image_features');
    const unknown = await call('catalog.ports', { type: 'projector.nope', params: {} });
    expect(!unknown.ok && unknown.error).toMatchObject({ code: 'not-found', message: expect.stringContaining('projector.nope') });
  });

  it('lists checkpoints in the data folder (none yet) and has no dataset dialog in browser mode', async () => {
    expect(await call('train.checkpoints', {})).toEqual({ ok: true, result: { checkpoints: [] } });
    const r = await call('dataset.pick', {});
    expect(!r.ok && r.error.message).toMatch(/browser mode/);
  });
});

describe('engine info', () => {
  it('lists the recipes the trainer implements', async () => {
    const { RECIPE_NAMES } = await import('../engine/trainer/recipes.js');
    const r = await call('engine.info', {});
    expect(r.ok && r.result.recipes).toEqual([...RECIPE_NAMES]);
  });
});
