// Where things live on disk when running from the source tree or a bundle.

import { homedir } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (or unpacked app) root: the nearest folder above this file holding package.json. */
export function appRoot(): string {
  let dir = fileURLToPath(new URL('.', import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the app root (package.json) above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The app's own data folder (autosave, saved graphs, imported models, exports). `COMPOSER_DATA_DIR` overrides. */
export function defaultDataDir(): string {
  if (process.env.COMPOSER_DATA_DIR) return resolve(process.env.COMPOSER_DATA_DIR);
  const home = homedir();
  if (process.platform === 'win32') return join(process.env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'vlm-composer');
  if (process.platform === 'darwin') return join(home, 'Library', 'Application Support', 'vlm-composer');
  return join(process.env.XDG_DATA_HOME ?? join(home, '.local', 'share'), 'vlm-composer');
}

export const RENDERER_DIST = 'dist/renderer';
