// The shipped templates through the real CLI commands: every graph in graphs/ validates, runs from just --image
// and --prompt to text (and a PNG for NExT-GPT), and inspects; broken graphs and bad arguments fail with the
// right exit code and messages that name the node and field. One test spawns the real `vlmc` process.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseGraphDocument } from '../engine/document.js';
import { defaultCatalog } from '../nodes/catalog.js';
import { UsageError } from './args.js';
import { inspectCommand } from './inspect.js';
import { runCommand } from './run.js';
import { validateCommand } from './validate.js';

const root = join(import.meta.dirname, '..', '..');
const graphsDir = join(root, 'graphs');
const templates = readdirSync(graphsDir).filter((f) => f.endsWith('.graph.json')).sort();

interface Captured {
  code: number;
  lines: string[];
  errors: string[];
}

/** Runs a command in-process, capturing stdout lines and stderr (console.error). */
async function call(command: (argv: string[], out: (l: string) => void) => Promise<number>, argv: string[]): Promise<Captured> {
  const lines: string[] = [];
  const errors: string[] = [];
  const spy = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    errors.push(args.map(String).join(' '));
  });
  try {
    const code = await command(argv, (l) => lines.push(l));
    return { code, lines, errors };
  } finally {
    spy.mockRestore();
  }
}

function jsonLines(lines: string[]): Array<Record<string, unknown>> {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `vlmc` as a child process (tsx, as package.json's "vlmc" script runs it). */
function vlmc(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'electron', 'cli.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 90_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let image: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlmc-templates-'));
  image = join(dir, 'red-circle.png');
  const circle = Buffer.from('<svg width="64" height="64"><rect width="64" height="64" fill="white"/><circle cx="32" cy="32" r="20" fill="#d22"/></svg>');
  await sharp(circle).png().toFile(image);
});

afterEach(() => vi.restoreAllMocks());

/** The BLIP-2 template as JSON, its zoo weight paths made absolute so that a copy anywhere still finds them. */
function blip2Json(): unknown {
  const doc = JSON.parse(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8')) as { nodes: Array<{ weights?: { path: string } }> };
  for (const n of doc.nodes) if (n.weights) n.weights.path = resolve(graphsDir, n.weights.path);
  return doc;
}

describe('templates', () => {
  it('ships the architectures the catalogue promises', () => {
    expect(templates).toEqual(
      expect.arrayContaining([
        'blip.graph.json',
        'blip2.graph.json',
        'clip.graph.json',
        'flamingo.graph.json',
        'instructblip.graph.json',
        'llava-1.5.graph.json',
        'minigpt4.graph.json',
        'mplug-owl.graph.json',
        'nextgpt.graph.json',
      ]),
    );
  });

  it.each(templates)('%s lays out every node left to right, freezes encoders and LLMs, and uses tiny presets', (name) => {
    const doc = parseGraphDocument(readFileSync(join(graphsDir, name), 'utf8'), name);
    const pos = doc.ui.positions;
    for (const n of doc.nodes) expect(pos[n.id], `position of '${n.id}'`).toBeDefined();
    const spots = doc.nodes.map((n) => `${pos[n.id].x},${pos[n.id].y}`);
    expect(new Set(spots).size).toBe(spots.length);
    for (const e of doc.edges) {
      expect(pos[e.from.node].x, `${e.from.node} → ${e.to.node} points right`).toBeLessThan(pos[e.to.node].x);
    }
    for (const n of doc.nodes) {
      const family = defaultCatalog.lookup(n.type)?.info.family;
      if (family === 'encoder' || family === 'llm' || family === 'generator') {
        if (n.type !== 'llm.merge_image_text' && defaultCatalog.lookup(n.type)?.build) expect(n.frozen, `'${n.id}' (${n.type}) frozen`).toBe(true);
      }
      if ('preset' in n.params) expect(n.params.preset).toBe('tiny');
    }
  });

  it.each(templates)('%s validates with no diagnostics', async (name) => {
    const r = await call(validateCommand, [join(graphsDir, name), '--json']);
    const lines = jsonLines(r.lines);
    expect(lines.filter((l) => l.type === 'diagnostic')).toEqual([]);
    expect(lines.at(-1)).toMatchObject({ type: 'summary', ok: true, errors: 0 });
    expect(r.code).toBe(0);
  });

  it.each(templates)('%s runs from --image (where it takes one) and --prompt to its outputs', async (name) => {
    const out = join(dir, name.replace('.graph.json', ''));
    const takesImage = parseGraphDocument(readFileSync(join(graphsDir, name), 'utf8'), name).nodes.some((n) => n.type === 'io.image');
    const r = await call(runCommand, [join(graphsDir, name), ...(takesImage ? ['--image', image] : []), '--prompt', 'What is in the image?', '--json', '--out', out]);
    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    const events = jsonLines(r.lines);
    const result = events.at(-1) as { type: string; outputs: Record<string, Record<string, unknown>>; computed: string[]; ms: number };
    expect(result.type).toBe('result');
    expect(events.filter((e) => e.type === 'started').map((e) => e.node)).toEqual(result.computed);
    expect(events.filter((e) => e.type === 'computed').map((e) => e.node)).toEqual(result.computed);
    const doc = parseGraphDocument(readFileSync(join(graphsDir, name), 'utf8'), name);
    // Every output node got its value: text in full, images as PNG files.
    const textOut = doc.nodes.filter((n) => n.type === 'io.text_output');
    expect(textOut.length + doc.nodes.filter((n) => n.type === 'io.image_output').length).toBeGreaterThan(0);
    // A template that answers in words says something; a drawing template's answer is its picture (NExT-GPT's LLM
    // answers with the signal tokens, and may say nothing after them).
    const draws = doc.nodes.some((n) => n.type === 'io.image_output');
    for (const n of textOut) {
      const text = result.outputs[n.id]?.text;
      expect(typeof text, `text at '${n.id}'`).toBe('string');
      if (!draws) expect((text as string).trim().length, `text at '${n.id}'`).toBeGreaterThan(0);
    }
    for (const n of doc.nodes.filter((x) => x.type === 'io.image_output')) {
      const path = result.outputs[n.id]?.path as string;
      expect(path).toBe(join(out, `${n.id}.png`));
      const meta = await sharp(path).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 32, 32]);
    }
    // The prompt reached the prompt node (the first io.text).
    expect(result.outputs.prompt?.text).toBe('What is in the image?');
  });
});

describe('vlmc run', () => {
  it('CLIP classifies among the labels given as the prompt and reports the scores', async () => {
    const r = await call(runCommand, [join(graphsDir, 'clip.graph.json'), '--image', image, '--prompt', 'a red circle; a blue square; a green star', '--json']);
    expect(r.code).toBe(0);
    const result = jsonLines(r.lines).at(-1) as { outputs: Record<string, Record<string, { values?: number[] } | string>> };
    const scores = result.outputs.classify.scores as { shape: number[]; values: number[] };
    expect(scores.shape).toEqual([1, 3]);
    expect(scores.values.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const best = ['a red circle', 'a blue square', 'a green star'][scores.values.indexOf(Math.max(...scores.values))];
    expect(result.outputs.answer.text).toBe(best);
  });

  it('prints plain text, and takes per-node inputs and bundle folders', async () => {
    const bundle = join(dir, 'bundle');
    mkdirSync(bundle, { recursive: true });
    writeFileSync(join(bundle, 'graph.json'), JSON.stringify(blip2Json()));
    const promptFile = join(dir, 'question.txt');
    writeFileSync(promptFile, 'What color is the circle?');
    const r = await call(runCommand, [bundle, '--node-input', `image=${image}`, '--node-input', `prompt=@${promptFile}`]);
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0].length).toBeGreaterThan(0);
    // The same inputs as JSON: the plain line is the answer's text, and the prompt went through the template.
    const json = await call(runCommand, [bundle, '--image', image, '--node-input=prompt=What color is the circle?', '--json']);
    const result = jsonLines(json.lines).at(-1) as { outputs: Record<string, Record<string, unknown>> };
    expect(result.outputs.template.text).toBe('Question: What color is the circle? Answer:');
    expect(result.outputs.answer.text).toBe(r.lines[0]);
  });

  it('rejects bad arguments and missing files with messages naming them', async () => {
    const blip2 = join(graphsDir, 'blip2.graph.json');
    await expect(call(runCommand, [blip2, '--image', image, '--node-input', 'nosuch=x'])).rejects.toThrow(/no node 'nosuch'/);
    await expect(call(runCommand, [blip2, '--image', image, '--node-input', 'qformer=x'])).rejects.toThrow(/projector\.qformer, which takes no run input/);
    await expect(call(runCommand, [blip2, '--image', image, '--bogus', '1'])).rejects.toThrow(UsageError);
    await expect(call(runCommand, [blip2, '--image', join(dir, 'missing.png')])).rejects.toThrow(/--image: no such file: .*missing\.png/);
    await expect(call(runCommand, [join(dir, 'nothing-here.graph.json')])).rejects.toThrow(/no such file or folder/);
  });
});

describe('broken graphs', () => {
  function brokenBlip2(): string {
    const doc = blip2Json() as {
      nodes: Array<{ id: string; params: Record<string, unknown> }>;
      edges: Array<{ from: { node: string; port: string }; to: { node: string; port: string } }>;
    };
    doc.nodes.find((n) => n.id === 'qformer')!.params.num_querys = 4;
    doc.edges.find((e) => e.to.node === 'merge' && e.to.port === 'token_embeds')!.from.port = 'input_embeds';
    const path = join(dir, 'broken.graph.json');
    writeFileSync(path, JSON.stringify(doc));
    return path;
  }

  it('validate lists every diagnostic with node, port and fix, and exits 1', async () => {
    const r = await call(validateCommand, [brokenBlip2(), '--json']);
    expect(r.code).toBe(1);
    const diags = jsonLines(r.lines).filter((l) => l.type === 'diagnostic');
    expect(diags).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ severity: 'error', node: 'qformer', message: expect.stringMatching(/unknown param 'num_querys'/), fix: expect.stringMatching(/num_query_tokens/) }),
        expect.objectContaining({ severity: 'error', node: 'embed', port: 'input_embeds', fix: "use port 'inputs_embeds'" }),
      ]),
    );
    const text = await call(validateCommand, [brokenBlip2()]);
    expect(text.code).toBe(1);
    expect(text.lines.join('\n')).toMatch(/^error\s+node 'qformer' \(projector\.qformer\): unknown param 'num_querys'\n\s+fix: .*num_query_tokens/m);
    expect(text.lines.join('\n')).toMatch(/^error\s+port 'input_embeds': .*node 'embed'.*\n\s+fix: use port 'inputs_embeds'/m);
    expect(text.lines.at(-1)).toMatch(/^2 error\(s\), 0 warning\(s\)/);
  });

  it('a document that does not parse names the JSON path', async () => {
    const path = join(dir, 'bad-structure.graph.json');
    writeFileSync(path, JSON.stringify({ format: 'composer.graph', version: 1, nodes: [{ id: 'x', type: 'io.text', colour: 1 }] }));
    const r = await call(validateCommand, [path, '--json']);
    expect(r.code).toBe(1);
    expect(String(jsonLines(r.lines)[0].message)).toMatch(/\$\.nodes\[0\] \(node 'x'\).*'colour'/);
  });
});

describe('vlmc inspect', () => {
  it('counts parameters from the built fragments, with frozen and shared weights', async () => {
    const r = await call(inspectCommand, [join(graphsDir, 'blip2.graph.json'), '--json']);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.lines);
    const node = (id: string) => lines.find((l) => l.type === 'node' && l.id === id) as Record<string, unknown>;
    expect(node('vit')).toMatchObject({ nodeType: 'encoder.eva_vit', frozen: true, trainable: 0, bitsPerParam: 32 });
    expect(node('vit').params as number).toBeGreaterThan(10_000);
    expect(node('vit').bytes).toBe((node('vit').params as number) * 4);
    expect(node('qformer').trainable).toBe(node('qformer').params);
    expect(node('embed')).toMatchObject({ sharedWith: 'llm', params: 0 });
    expect(node('image')).toMatchObject({ onnx: false, params: 0, bitsPerParam: null });
    const total = lines.at(-1) as { type: string; params: number; trainable: number; trainablePercent: number };
    const nodes = lines.filter((l) => l.type === 'node');
    expect(total.type).toBe('total');
    expect(total.params).toBe(nodes.reduce((n, l) => n + (l.params as number) + (l.adapterParams as number), 0));
    expect(total.trainable).toBe(node('qformer').params);
    expect(total.trainablePercent).toBeCloseTo((100 * total.trainable) / total.params, 6);
  });

  it('counts adapter weights as trainable and NF4 storage below 5 bits per parameter', async () => {
    const doc = blip2Json() as { nodes: Array<Record<string, unknown>> };
    const llm = doc.nodes.find((n) => n.id === 'llm')!;
    llm.adapters = [{ id: 'qa', method: 'qlora', config: { r: 4, target_modules: ['q_proj', 'v_proj'] } }];
    const path = join(dir, 'qlora.graph.json');
    writeFileSync(path, JSON.stringify(doc));
    const r = await call(inspectCommand, [path, '--json']);
    expect(r.code).toBe(0);
    const stats = jsonLines(r.lines).find((l) => l.id === 'llm') as Record<string, number | boolean>;
    expect(stats.frozen).toBe(true);
    expect(stats.adapterParams).toBeGreaterThan(0);
    expect(stats.trainable).toBe(stats.adapterParams);
    expect(stats.bitsPerParam).toBeLessThan(32);
    expect(stats.bytes).toBeLessThan((stats.params as number) * 4);
    const text = await call(inspectCommand, [path]);
    expect(text.lines.join('\n')).toMatch(/llm\s+llm\.decoder[\s\S]*qa:qlora \(\+[\d,]+\)/);
    expect(text.lines.at(-1)).toMatch(/^total: [\d,]+ parameters, [\d,]+ trainable \(\d+\.\d\d%\)/);
  });
});

describe('the vlmc process', () => {
  it('runs a template end to end and exits 0; a broken graph exits 1 naming the node; bad usage exits 2', () => {
    const ok = vlmc(['run', 'graphs/blip2.graph.json', '--image', image, '--prompt', 'What is this?', '--json']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const last = JSON.parse(ok.stdout.trim().split('\n').at(-1)!) as { type: string; outputs: { answer: { text: string } } };
    expect(last.type).toBe('result');
    expect(last.outputs.answer.text.length).toBeGreaterThan(0);

    const broken = join(dir, 'broken-process.graph.json');
    const doc = blip2Json() as { nodes: Array<{ id: string; params: Record<string, unknown> }> };
    doc.nodes.find((n) => n.id === 'llm')!.params.flavour = 'mamba';
    writeFileSync(broken, JSON.stringify(doc));
    const bad = vlmc(['run', broken, '--image', image, '--prompt', 'x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/node 'llm'.*param 'flavour'/);

    const usage = vlmc(['run']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/usage: vlmc run/);
  });
});
