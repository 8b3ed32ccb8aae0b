// The browser-mode host as the e2e specs and bench/ui use it: `electron/start.ts --browser --no-open` on a free port
// with a throwaway data folder, and the flags Debian's Chromium runs with here (DESIGN.md).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export interface BrowserHost {
  /** The app's URL with its per-launch token. */
  url: string;
  dataDir: string;
  /** Stops the host and deletes its data folder. */
  stop: () => Promise<void>;
}

/** Starts the host (rebuilding the renderer first when asked) and waits for the URL it prints. */
export async function startBrowserHost(o: { cwd: string; rebuild: boolean; label: string }): Promise<BrowserHost> {
  const dataDir = mkdtempSync(join(tmpdir(), `composer-${o.label}-`));
  const args = ['--import', 'tsx', 'electron/start.ts', '--browser', '--no-open', '--port', '0', ...(o.rebuild ? ['--rebuild'] : [])];
  const child = spawn(process.execPath, args, { cwd: o.cwd, env: { ...process.env, COMPOSER_DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  let log = '';
  try {
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
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the Composer host exited with code ${code}:\n${log}`));
      });
    });
    return { url, dataDir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
