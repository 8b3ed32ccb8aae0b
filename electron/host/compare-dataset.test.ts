// compare.start with a dataset: the contract checks the options, and a dataset file is read only when the user
// picked it (the file policy), as for training.

import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHostApi } from './api.js';

const root = mkdtempSync(join(tmpdir(), 'composer-host-compare-'));
mkdirSync(join(root, 'graphs'));
const api = createHostApi({ mode: 'browser', dataDir: join(root, 'data'), templatesDir: join(root, 'graphs') });
afterAll(() => api.close());
const doc = { format: 'composer.graph', version: 1, name: 'g', nodes: [], edges: [] };
const start = (dataset: unknown) => api.call('compare.start', { document: doc, nodeId: 'qformer', candidates: [{ type: 'projector.mlp' }], dataset });

describe('compare.start on a dataset', () => {
  it('refuses a dataset file the user did not pick', async () => {
    const r = await start({ name: '/etc/passwd', limit: 4 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toEqual({ code: 'file-policy', message: expect.stringContaining("'/etc/passwd' is outside") });
  });
  it('checks the options, naming the field', async () => {
    const r = await start({ name: 'shapes', limit: 0 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/compare\.start request: dataset\.limit/);
    const extra = await start({ name: 'shapes', limit: 4, steps: 3 });
    expect(!extra.ok && extra.error.message).toMatch(/dataset: Unrecognized key: "steps"/i);
  });
});
