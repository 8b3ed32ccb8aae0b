// Nodes reading a Hugging Face folder: the first run reports reading their tensors as progress (bytes read / total,
// what the canvas and the Models panel draw as a bar); parameter counts come from shapes and never read them.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importHfFolder } from '../formats/hf/import.js';
import { tinyLlamaParameters, writeTinyLlamaFolder } from '../formats/hf/tiny-llama.test-support.js';
import { Executor, type RunEvent } from './executor.js';
import { parameterStats } from './param-stats.js';

const dir = writeTinyLlamaFolder(join(mkdtempSync(join(tmpdir(), 'composer-folder-weights-')), 'tiny-llama'));
const { doc, summary } = importHfFolder(dir);
const executor = new Executor();
afterAll(() => executor.dispose());

describe('weights read from a model folder', () => {
  it('the first run reports loading progress per node up to every stored byte; the second reads nothing', async () => {
    const events: RunEvent[] = [];
    const withPrompt = { ...doc, nodes: doc.nodes.map((n) => (n.type === 'io.text' ? { ...n, params: { ...n.params, text: 'a red circle' } } : n)) };
    await executor.run(withPrompt, { baseDir: dir, onEvent: (e) => events.push(e) });
    const loading = events.filter((e): e is Extract<RunEvent, { type: 'progress' }> => e.type === 'progress' && e.detail === 'loading weights');
    const last = new Map(loading.map((e) => [e.node, e]));
    expect([...last.keys()].sort()).toEqual(['embed', 'llm']);
    for (const e of last.values()) expect(e.step).toBe(e.total);
    // The decoder reads all but the word embedding (the Embed tokens node's own, untied in LLaMA).
    expect(last.get('embed')!.total + last.get('llm')!.total).toBe(summary.weightBytes);
    // Progress comes before the node is computed.
    const llmDone = events.findIndex((e) => e.type === 'computed' && e.node === 'llm');
    expect(events.indexOf(last.get('llm')!)).toBeLessThan(llmDone);

    const again: RunEvent[] = [];
    await executor.run(withPrompt, { baseDir: dir, onEvent: (e) => again.push(e) });
    expect(again.some((e) => e.type === 'progress' && e.detail === 'loading weights')).toBe(false);
  });

  it('parameter counts come from the shapes: they equal the folder and need no weights file', async () => {
    rmSync(join(dir, 'model.safetensors'));
    const report = await parameterStats(new Executor(), doc, dir, { tolerateErrors: true });
    expect(report.nodes.filter((n) => n.error)).toEqual([]);
    expect(report.total.params).toBe(tinyLlamaParameters());
    expect(report.nodes.some((n) => n.describeOnly)).toBe(false);
    expect(report.total.bytes).toBe(tinyLlamaParameters() * 4);
  });
});
