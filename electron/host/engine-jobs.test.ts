// The engine jobs in-process (as the CLI can call them): the same interface the worker serves the host.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { EngineFailure, inProcessEngine } from './engine-jobs.js';

const graphs = join(import.meta.dirname, '../../graphs');

describe('engine jobs in-process', () => {
  const engine = inProcessEngine();

  it('lists the catalogue and parses, validates and counts a template', async () => {
    const { types } = await engine.call('catalog.list', {});
    expect(types.map((t) => t.type)).toContain('llm.decoder');
    const text = readFileSync(join(graphs, 'blip.graph.json'), 'utf8');
    const { document } = await engine.call('document.parse', { name: 'blip.graph.json', text });
    expect(document.nodes.length).toBeGreaterThan(3);
    const { diagnostics } = await engine.call('document.validate', { document });
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  });

  it('fails with the code the host maps onto the contract', async () => {
    await expect(engine.call('document.parse', { name: 'x.graph.json', text: '{' })).rejects.toSatisfy(
      (e: unknown) => e instanceof EngineFailure && e.code === 'invalid-file' && /x\.graph\.json/.test(e.message),
    );
    await expect(engine.call('catalog.ports', { type: 'no.such', params: {} })).rejects.toSatisfy(
      (e: unknown) => e instanceof EngineFailure && e.code === 'not-found',
    );
  });

  it('reports a job through events and answers with its id at once', async () => {
    const text = readFileSync(join(graphs, 'blip.graph.json'), 'utf8');
    const { document } = await engine.call('document.parse', { name: 'blip.graph.json', text });
    const events: string[] = [];
    const finished = new Promise<void>((resolve) => {
      const off = engine.onEvent((e) => {
        if (e.channel !== 'run.event' || e.id !== 'r1') return;
        events.push(e.type);
        if (e.type === 'done' || e.type === 'error') {
          off();
          resolve();
        }
      });
    });
    const image = new Uint8Array(await sharp({ create: { width: 48, height: 48, channels: 3, background: '#c33' } }).png().toBuffer());
    expect(await engine.call('run.start', { id: 'r1', document, baseDir: graphs, inputs: { image: { name: 'red.png', bytes: image }, prompt: 'a' } })).toEqual({ id: 'r1' });
    await finished;
    expect(events[0]).toBe('started');
    expect(events.at(-1)).toBe('done');
  }, 60_000);
});
