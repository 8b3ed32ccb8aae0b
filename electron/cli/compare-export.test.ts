import { cpSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyExport } from '../export/manifest.js';
import { UsageError } from './args.js';
import { compareCommand } from './compare.js';
import { exportCommand } from './export.js';
import { runCommand } from './run.js';

const graph = join(import.meta.dirname, '..', '..', 'graphs', 'blip2.graph.json');

async function capture(cmd: (argv: string[], out: (l: string) => void) => Promise<number>, argv: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await cmd(argv, (l) => lines.push(l));
  return { code, lines };
}

describe('vlmc compare / vlmc export', () => {
  let tmp: string;
  let image: string;
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'composer-cli-'));
    image = join(tmp, 'pink.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#e4a' } }).png().toFile(image);
  });

  it('compare --json: node events (vit computed once, then cached), one line per variant, then a summary', async () => {
    const { code, lines } = await capture(compareCommand, [graph, '--node', 'qformer', '--with', 'mlp,linear', '--image', image, '--json']);
    expect(code).toBe(0);
    const rows = lines.map((l) => JSON.parse(l) as { type: string; node?: string; variant?: number; nodeType?: string; totalParams?: number });
    const vit = rows.filter((r) => r.node === 'vit');
    expect(vit.map((r) => [r.type, r.variant])).toEqual([['computed', 0], ['cached', 1], ['cached', 2]]);
    const kinds = rows.map((r) => r.type);
    const firstVariant = kinds.indexOf('variant');
    expect(kinds.slice(0, firstVariant).every((k) => k === 'cached' || k === 'computed')).toBe(true);
    expect(kinds.slice(firstVariant)).toEqual(['variant', 'variant', 'variant', 'summary']);
    expect(rows.filter((r) => r.type === 'variant').map((r) => r.nodeType)).toEqual(['projector.qformer', 'projector.mlp', 'projector.linear']);
    expect(rows.at(-1)).toMatchObject({ type: 'summary', node: 'qformer', computeCounts: { vit: 1, qformer: 3 } });
  });

  it('compare prints a side-by-side table', async () => {
    const { lines } = await capture(compareCommand, [graph, '--node', 'qformer', '--with', 'linear', '--image', image]);
    expect(lines[0]).toMatch(/^variant\s+type\s+output\s+latency ms\s+total params\s+trainable$/);
    expect(lines[2]).toMatch(/^0 \(graph\)\s+projector\.qformer\s+".*"\s+[\d.]+\s+[\d,]+\s+[\d,]+$/);
    expect(lines[3]).toMatch(/^1\s+projector\.linear\s+".*"\s+[\d.]+\s+[\d,]+\s+6,240$/);
    expect(lines.join('\n')).toMatch(/shared by all variants.*image, vit/);
  });

  it('usage errors name the option', async () => {
    await expect(compareCommand([graph, '--with', 'mlp'], () => undefined)).rejects.toThrow(/--node/);
    await expect(compareCommand([graph, '--node', 'qformer', '--image'], () => undefined)).rejects.toThrow(UsageError);
    await expect(exportCommand([graph, '--format', 'zip', '--out', tmp], () => undefined)).rejects.toThrow(/--format must be one of bundle, onnx, triton/);
  });

  it('export --format bundle: `vlmc run` on a moved copy prints what the original graph prints', async () => {
    const out = join(tmp, 'bundle');
    const { code, lines } = await capture(exportCommand, [graph, '--format', 'bundle', '--out', out]);
    expect(code).toBe(0);
    expect(lines.at(-2)).toMatch(/as bundle to .*\(\d+ files/);
    expect(verifyExport(out)).toEqual([]);
    const moved = join(mkdtempSync(join(tmpdir(), 'composer-cli-moved-')), 'b');
    cpSync(out, moved, { recursive: true });
    const args = ['--image', image, '--prompt', 'what shape is it?'];
    const original = await capture(runCommand, [graph, ...args]);
    const bundled = await capture(runCommand, [moved, ...args]);
    expect(original.code).toBe(0);
    expect(bundled.lines.join('\n').length).toBeGreaterThan(0);
    expect(bundled.lines).toEqual(original.lines);
  });

  it('export --format onnx --json lists the files it wrote', async () => {
    const out = join(tmp, 'onnx');
    const { lines } = await capture(exportCommand, [graph, '--format', 'onnx', '--out', out, '--external-data', 'always', '--json']);
    const rows = lines.map((l) => JSON.parse(l) as { type: string; path?: string });
    expect(rows.filter((r) => r.type === 'file').map((r) => r.path)).toEqual(['model.onnx', 'model.onnx.data', 'ports.json']);
    expect(rows.at(-1)).toMatchObject({ type: 'summary', format: 'onnx', entry: 'model.onnx' });
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);
  });
});
