// The Models list — the Hugging Face folders imported in this profile, kept in the app's data folder as
// `models.json` (zod-validated on every read) — and the staging of folders a browser uploads file by file.

import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../onnx/atomic.js';
import { describeZodError, importedModelSchema, MAX_FOLDER_UPLOAD_BYTES, type ImportedModel } from './contract.js';
import { FilePolicy } from './files.js';

export class ModelsError extends Error {
  constructor(
    readonly code: 'invalid-request' | 'invalid-file',
    message: string,
  ) {
    super(message);
    this.name = 'ModelsError';
  }
}

const listFileSchema = z.object({
  format: z.literal('composer.models'),
  version: z.literal(1),
  models: z.array(importedModelSchema),
});

/** The list file. A damaged one is moved aside (kept, never overwritten) and the next `read` reports it once. */
export class ModelList {
  private warning: string | undefined;

  constructor(readonly path: string) {}

  read(): ImportedModel[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    let why: string;
    try {
      const parsed = listFileSchema.safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data.models;
      why = describeZodError(parsed.error, 'fields');
    } catch (e) {
      why = `not valid JSON: ${(e as Error).message}`;
    }
    const aside = `${this.path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(this.path, aside);
    this.warning = `the Models list '${this.path}' was damaged (${why}); it is kept as '${aside}' and a fresh list started`;
    return [];
  }

  /** A warning about a damaged list file, given once. */
  takeWarning(): string | undefined {
    const w = this.warning;
    this.warning = undefined;
    return w;
  }

  /** Adds (or refreshes) a folder's entry, newest first. */
  add(model: ImportedModel): ImportedModel[] {
    return this.write([model, ...this.read().filter((m) => m.dir !== model.dir)]);
  }

  remove(dir: string): ImportedModel[] {
    const models = this.read();
    if (!models.some((m) => m.dir === dir)) throw new ModelsError('invalid-request', `'${dir}' is not in the Models list`);
    return this.write(models.filter((m) => m.dir !== dir));
  }

  private write(models: ImportedModel[]): ImportedModel[] {
    writeFileAtomic(this.path, `${JSON.stringify({ format: 'composer.models', version: 1, models }, null, 2)}\n`);
    return models;
  }
}

/**
 * Folders a browser uploads: `models/<uploadId>/<folder>/<path>` in the app's data folder, each file in chunks that
 * arrive in order; the whole upload is refused past MAX_FOLDER_UPLOAD_BYTES.
 */
export class FolderUploads {
  /** Bytes received per upload, per file. */
  private readonly received = new Map<string, Map<string, number>>();

  constructor(private readonly files: FilePolicy) {}

  folderOf(uploadId: string, folder: string): string {
    return this.files.dataPath('models', uploadId, FilePolicy.plainFileName(folder, 'uploaded folder name'));
  }

  /** Writes one chunk; returns the bytes the upload holds now. */
  write(o: { uploadId: string; folder: string; path: string; offset: number; base64: string }): number {
    const parts = o.path.split('/');
    if (parts.length > 6) throw new ModelsError('invalid-request', `'${o.path}' lies more than 6 folders deep in the dropped folder`);
    const target = join(this.folderOf(o.uploadId, o.folder), ...parts.map((p) => FilePolicy.plainFileName(p, `a name in '${o.path}'`)));
    const bytes = Buffer.from(o.base64, 'base64');
    const perFile = this.received.get(o.uploadId) ?? new Map<string, number>();
    const had = existsSync(target) ? statSync(target).size : 0;
    if (o.offset !== 0 && o.offset !== had) {
      throw new ModelsError('invalid-request', `'${o.path}': a chunk at byte ${o.offset} arrived, but the file holds ${had} bytes`);
    }
    const fileBytes = o.offset + bytes.length;
    let total = fileBytes;
    for (const [p, n] of perFile) if (p !== o.path) total += n;
    if (total > MAX_FOLDER_UPLOAD_BYTES) {
      throw new ModelsError(
        'invalid-request',
        `the dropped folder holds more than ${MAX_FOLDER_UPLOAD_BYTES / 2 ** 20} MiB, too much to upload: type its path in Import model folder… instead`,
      );
    }
    mkdirSync(dirname(target), { recursive: true });
    if (o.offset === 0) writeFileSync(target, bytes);
    else appendFileSync(target, bytes);
    perFile.set(o.path, fileBytes);
    this.received.set(o.uploadId, perFile);
    return total;
  }

  /** The uploaded folder, which must have received files. */
  finish(uploadId: string, folder: string): string {
    const dir = this.folderOf(uploadId, folder);
    if (!this.received.has(uploadId) || !existsSync(dir)) {
      throw new ModelsError('invalid-request', `no files of the dropped folder '${folder}' arrived (upload ${uploadId})`);
    }
    this.received.delete(uploadId);
    return dir;
  }
}
