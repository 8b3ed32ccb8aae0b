// Starts the browser-mode host once for all specs (`npm start` with --browser --no-open on a free port) with a
// throwaway data folder, and hands the URL (with its token) to the specs through the environment. The renderer is
// rebuilt first (a few seconds), so the specs always test the current sources, not a stale dist/.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default async function globalSetup(): Promise<() => Promise<void>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'composer-e2e-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'electron/start.ts', '--browser', '--no-open', '--rebuild', '--port', '0'], {
    env: { ...process.env, COMPOSER_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Composer host did not start within 120 s:\n${log}`)), 120_000);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const m = /Composer is running at (\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Composer host exited with code ${code}:\n${log}`));
    });
  });
  process.env.COMPOSER_URL = url;
  process.env.COMPOSER_DATA_DIR = dataDir;
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  };
}
