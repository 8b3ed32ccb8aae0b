import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../onnx/safetensors.js';

const root = join(import.meta.dirname, '..', '..');
const fixtures = join(root, '..', 'shared', 'fixtures');
const vlmc = (args: string[]) =>
  spawnSync(process.execPath, [join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(root, 'electron', 'cli.ts'), ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });

describe.skipIf(!existsSync(fixtures))('vlmc gradcheck (real process)', () => {
  it('passes the mlp_projector fixture and ends with the summary line', () => {
    const r = vlmc(['gradcheck', join(fixtures, 'mlp_projector.onnx'), join(fixtures, 'mlp_projector.ref.safetensors')]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('gradcheck: 5/5 tensors within tolerance');
    expect(lines.some((l) => /^linear_1\.weight\s+\[48,32\].*ok$/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('output image_embeds') && l.includes('matches the reference'))).toBe(true);
  });

  it('fails (exit 1) when a reference gradient is wrong, naming the tensor', () => {
    const ref = readSafetensors(join(fixtures, 'mlp_projector.ref.safetensors'));
    const g = ref.tensors.get('grad.linear_2.bias')!;
    const data = Float32Array.from(g.data as Float32Array);
    data[3] += 0.5;
    ref.tensors.set('grad.linear_2.bias', { ...g, data });
    const path = join(mkdtempSync(join(tmpdir(), 'gradcheck-')), 'bad.ref.safetensors');
    writeSafetensors(path, ref.tensors, ref.metadata);
    const r = vlmc(['gradcheck', join(fixtures, 'mlp_projector.onnx'), path, '--json']);
    expect(r.status).toBe(1);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; name?: string; ok?: boolean });
    expect(rows.find((x) => x.name === 'linear_2.bias')?.ok).toBe(false);
    expect(rows.at(-1)).toMatchObject({ type: 'summary', passed: 4, total: 5, ok: false });
  });

  it('checks by finite differences with --fd', () => {
    const r = vlmc(['gradcheck', join(fixtures, 'mlp_projector.onnx'), join(fixtures, 'mlp_projector.ref.safetensors'), '--fd']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('gradcheck: 5/5 tensors within tolerance');
  });

  it('a missing model file is a clear error naming it', async () => {
    const { gradcheckCommand } = await import('./gradcheck.js');
    await expect(gradcheckCommand(['/nonexistent/model.onnx', '--fd'], () => undefined)).rejects.toThrow(/\/nonexistent\/model\.onnx/);
  });
});
