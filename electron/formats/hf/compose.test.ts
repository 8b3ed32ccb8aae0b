// The README's walkthrough on the fixture folders: a CLIP vision folder and a LLaMA folder composed into LLaVA
// (`vlmc import VISION LLM --as llava`), run, its new projector trained with llava-stage1, then compared on the
// shapes data against a Q-Former in its place — the commands a user types, with real sessions and files.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importCommand } from '../../cli/import.js';
import { runCommand } from '../../cli/run.js';
import { trainCommand } from '../../cli/train.js';
import { compareCommand } from '../../cli/compare.js';
import { TESTDATA, fixtureDir } from './fixtures.test-support.js';
import { composeLlava } from './compose.js';

const work = mkdtempSync(join(tmpdir(), 'composer-walkthrough-'));

async function cli(cmd: (argv: string[], out: (l: string) => void) => Promise<number>, argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  const code = await cmd(argv, (l) => lines.push(l));
  expect(code, lines.join('\n')).toBe(0);
  return lines;
}

describe('README walkthrough: LLaVA from a CLIP vision folder and a LLaMA folder', () => {
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const graph = join(work, 'my-llava.graph.json');
  const image = join(TESTDATA, 'llava.image.png');

  it('composes, runs, trains the projector and compares it with a Q-Former', async () => {
    await cli(importCommand, [fixtureDir('clip_vision'), fixtureDir('llama'), '--as', 'llava', '--out', graph]);
    const doc = JSON.parse(readFileSync(graph, 'utf8')) as { nodes: Array<{ id: string; type: string; frozen: boolean; weights?: { hf?: { architecture: string } } }> };
    const byId = new Map(doc.nodes.map((n) => [n.id, n]));
    expect(byId.get('vit')).toMatchObject({ type: 'encoder.clip_vit', frozen: true, weights: { hf: { architecture: 'clip' } } });
    expect(byId.get('llm')).toMatchObject({ type: 'llm.decoder', frozen: true, weights: { hf: { architecture: 'llama' } } });
    expect(byId.get('proj')).toMatchObject({ type: 'projector.mlp', frozen: false });
    expect(byId.get('proj')?.weights).toBeUndefined();

    const answer = await cli(runCommand, [graph, '--image', image, '--prompt', 'What is in the image?', '--max-new-tokens', '6']);
    expect(answer.join(' ').trim().length).toBeGreaterThan(0);

    const trained = join(work, 'trained');
    const steps = (await cli(trainCommand, [graph, '--recipe', 'llava-stage1', '--dataset', 'shapes', '--steps', '6', '--out', trained, '--json']))
      .map((l) => JSON.parse(l) as { type: string; loss?: number })
      .filter((e) => e.type === 'step');
    expect(steps).toHaveLength(6);
    // Only the projector trained: the folders' nodes still read their folders, the projector its new file.
    const out = JSON.parse(readFileSync(join(trained, 'graph.json'), 'utf8')) as { nodes: Array<{ id: string; weights?: { path: string; hf?: unknown } }> };
    const w = new Map(out.nodes.map((n) => [n.id, n.weights]));
    expect(w.get('proj')?.path).toBe('weights/proj.safetensors');
    expect(w.get('vit')?.hf).toBeDefined();
    expect(w.get('llm')?.hf).toBeDefined();

    const table = await cli(compareCommand, [join(trained, 'graph.json'), '--node', 'proj', '--with', 'qformer', '--dataset', 'shapes', '--train-steps', '3', '--recipe', 'llava-stage1', '--limit', '4']);
    const rows = table.filter((l) => /^(0 \(graph\)|1)\s/.test(l));
    expect(rows.map((r) => r.split(/\s+/)[r.startsWith('0') ? 2 : 1])).toEqual(['projector.mlp', 'projector.qformer']);
  });

  it('refuses a text tower as the vision side and a vision folder as the language model, by name', () => {
    expect(() => composeLlava(fixtureDir('clip_text'), fixtureDir('llama'))).toThrow(/must be a CLIP vision model .*not CLIPTextModelWithProjection/);
    expect(() => composeLlava(fixtureDir('clip_vision'), fixtureDir('clip_vision'))).toThrow(/language model must be a causal LM/);
  });
});
