// The export manifest (`manifest.json`): what an export folder holds, the sha256 and size of every file, and which
// Composer wrote it. `verifyExport` re-hashes the folder, so a copied or shipped export can be checked before use.

import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../onnx/atomic.js';
import { confinedPath } from '../onnx/proto.js';
import { hashBytes } from '../engine/keys.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'composer.export';

export class ExportError extends Error {
  override name = 'ExportError';
}

export const exportedFileSchema = z.strictObject({
  /** Relative to the export folder, '/'-separated. */
  path: z.string().min(1),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ExportedFile = z.infer<typeof exportedFileSchema>;

export const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(1),
  kind: z.enum(['bundle', 'onnx', 'triton', 'hf', 'train-job']),
  composer: z.strictObject({ name: z.string(), version: z.string() }),
  createdAt: z.string(),
  /** The graph document's name. */
  graph: z.string(),
  /** Kind-specific entry points, e.g. `{ graph: 'graph.json' }` or `{ model: 'model.onnx' }`. */
  entry: z.record(z.string(), z.string()),
  files: z.array(exportedFileSchema),
  notes: z.array(z.string()).default([]),
});
export type Manifest = z.infer<typeof manifestSchema>;

let cachedVersion: { name: string; version: string } | undefined;

/** Name and version of this Composer, from the nearest package.json named vlm-composer. */
export function composerVersion(): { name: string; version: string } {
  if (cachedVersion) return cachedVersion;
  let dir = import.meta.dirname;
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = z.object({ name: z.string(), version: z.string() }).safeParse(JSON.parse(readFileSync(file, 'utf8')));
      if (pkg.success && pkg.data.name === 'vlm-composer') return (cachedVersion = { name: pkg.data.name, version: pkg.data.version });
    }
    dir = dirname(dir);
  }
  throw new ExportError('cannot find the vlm-composer package.json to record the composer version');
}

/** Writes `data` to `dir/rel` atomically and returns its manifest entry. */
export function writeExportFile(dir: string, rel: string, data: Uint8Array | string): ExportedFile {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeFileAtomic(confinedPath(dir, rel, `export folder '${dir}'`), bytes);
  return { path: rel.split(sep).join('/'), bytes: bytes.length, sha256: hashBytes(bytes) };
}

/** Manifest entry for a file already written (e.g. by saveModel). */
export function describeFile(dir: string, rel: string): ExportedFile {
  const bytes = readFileSync(confinedPath(dir, rel, `export folder '${dir}'`));
  return { path: rel.split(sep).join('/'), bytes: bytes.length, sha256: hashBytes(bytes) };
}

export function writeManifest(dir: string, manifest: Omit<Manifest, 'format' | 'version' | 'composer' | 'createdAt'>): Manifest {
  const full: Manifest = manifestSchema.parse({
    format: MANIFEST_FORMAT,
    version: 1,
    composer: composerVersion(),
    createdAt: new Date().toISOString(),
    ...manifest,
  });
  writeFileAtomic(join(dir, MANIFEST_FILE), `${JSON.stringify(full, null, 2)}\n`);
  return full;
}

export function readManifest(dir: string): Manifest {
  const file = join(dir, MANIFEST_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ExportError(`cannot read '${file}': ${(e as Error).message}`);
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ExportError(`'${file}': ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

/** Re-hashes every file the manifest lists; returns one problem per missing or changed file (empty = intact). */
export function verifyExport(dir: string): string[] {
  const manifest = readManifest(dir);
  const problems: string[] = [];
  for (const f of manifest.files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(confinedPath(dir, f.path, `'${join(dir, MANIFEST_FILE)}'`));
    } catch (e) {
      problems.push(`'${f.path}' is missing: ${(e as Error).message}`);
      continue;
    }
    const sha = hashBytes(bytes);
    if (sha !== f.sha256) problems.push(`'${f.path}' was changed: sha256 ${sha}, the manifest says ${f.sha256}`);
  }
  return problems;
}

/**
 * Makes sure `dir` can take an export: it is created when missing; an existing folder must be empty or hold a
 * previous Composer export (never somebody's other files).
 */
export function prepareExportDir(dir: string): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new ExportError(`'${dir}' exists and is not a folder`);
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  if (!entries.includes(MANIFEST_FILE)) {
    throw new ExportError(`'${dir}' is not empty and holds no Composer export (${MANIFEST_FILE}); choose an empty or new folder`);
  }
  // Replacing a previous export: its files go, so nothing stale survives next to the new manifest.
  for (const f of readManifest(dir).files) rmSync(confinedPath(dir, f.path, `'${join(dir, MANIFEST_FILE)}'`), { force: true });
  rmSync(join(dir, MANIFEST_FILE), { force: true });
}

/** Files under `dir`, relative, for a summary (the manifest is the authoritative list). */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}
