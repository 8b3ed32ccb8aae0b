// File policy: the host touches only files the user picked (dialog, drop) and the app's own data folder.
// Every access re-resolves symlinks, so a link swapped after the pick cannot lead outside.

import { existsSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

export class FilePolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FilePolicyError';
  }
}

/** Resolves symlinks of the longest existing prefix, so a file that does not exist yet is still checked. */
function realResolve(path: string): string {
  const full = resolve(path);
  if (existsSync(full)) return realpathSync(full);
  const parent = dirname(full);
  if (parent === full) return full;
  return join(realResolve(parent), basename(full));
}

function isInside(folder: string, path: string): boolean {
  const rel = relative(folder, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && !rel.split(sep).includes('..'));
}

export class FilePolicy {
  readonly dataDir: string;
  /** Files the user picked, and folders the user picked (e.g. an export target). */
  private readonly pickedFiles = new Set<string>();
  private readonly pickedFolders = new Set<string>();

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.dataDir = realpathSync(dataDir);
  }

  /** Records a file the user chose through a dialog or a drop. */
  grantFile(path: string): string {
    const real = realResolve(path);
    this.pickedFiles.add(real);
    return real;
  }

  grantFolder(path: string): string {
    const real = realResolve(path);
    this.pickedFolders.add(real);
    return real;
  }

  /**
   * A model folder the user picked: readable as a whole (the weights stay where they lie). A hub-cache snapshot
   * (`models--org--name/snapshots/<rev>/`, whose files link into `../../blobs/`) also makes that model's own
   * `blobs/` readable, and nothing else of the cache.
   */
  grantModelFolder(path: string): string {
    const real = this.grantFolder(path);
    const snapshots = dirname(real);
    const repo = dirname(snapshots);
    if (basename(snapshots) === 'snapshots' && basename(repo).startsWith('models--')) this.grantFolder(join(repo, 'blobs'));
    return real;
  }

  /**
   * Something dropped on the window, whose path came from the OS: a folder is a model folder pick, a file a file
   * pick, and a dropped `config.json` picks its folder (dropping a model's config.json imports the model).
   */
  grantDropped(path: string): string {
    if (!isAbsolute(path)) throw new FilePolicyError(`'${path}' is not an absolute path`);
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (e) {
      throw new FilePolicyError(`cannot read the dropped '${path}': ${(e as Error).message}`);
    }
    if (isDir) return this.grantModelFolder(path);
    if (basename(path) === 'config.json') this.grantModelFolder(dirname(path));
    return this.grantFile(path);
  }

  /** A path inside the app's data folder; `parts` are names chosen by the app, never raw user input. */
  dataPath(...parts: string[]): string {
    const full = resolve(this.dataDir, ...parts);
    if (!isInside(this.dataDir, full)) {
      throw new FilePolicyError(`'${parts.join('/')}' would lie outside the app's data folder ${this.dataDir}`);
    }
    return full;
  }

  /** A file name the user typed (e.g. "my graph.graph.json"): one plain name, no folders. */
  static plainFileName(name: string, what: string): string {
    const trimmed = name.trim();
    if (!trimmed || trimmed === '.' || trimmed === '..' || /[\\/:\0]/.test(trimmed)) {
      throw new FilePolicyError(`${what} '${name}' must be a plain file name without folders`);
    }
    return trimmed;
  }

  /** Checks that `path` may be read or written; returns its resolved real path or throws naming it. */
  check(path: string): string {
    if (!isAbsolute(path)) throw new FilePolicyError(`'${path}' is not an absolute path; pick the file with the Open dialog`);
    const real = realResolve(path);
    if (isInside(this.dataDir, real)) return real;
    if (this.pickedFiles.has(real)) return real;
    for (const folder of this.pickedFolders) if (isInside(folder, real)) return real;
    throw new FilePolicyError(
      `'${path}' is outside the files you picked and the app's data folder; open it with the Open dialog first`,
    );
  }
}
