// One spec body, two runtimes: `page` is a Chromium tab on the browser-mode host, or the first window of the
// Electron app when the `electron` project runs and the binary exists.

import { test as base, expect, type Page } from '@playwright/test';
import { _electron, type ElectronApplication } from 'playwright-core';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The Electron binary, found without triggering a download. */
export function electronBinary(): string | null {
  try {
    const path = createRequire(import.meta.url)('electron') as unknown;
    return typeof path === 'string' && existsSync(path) ? path : null;
  } catch {
    return null;
  }
}

export const SCREENS = join(process.cwd(), 'test-results', 'screens');

export async function screen(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENS, { recursive: true });
  await page.screenshot({ path: join(SCREENS, `${name}.png`) });
}

export const test = base.extend<{ app: Page }>({
  app: async ({ page }, use, testInfo) => {
    if (testInfo.project.metadata.electron) {
      const binary = electronBinary();
      test.skip(!binary, 'Electron binary not installed (node_modules/electron/dist is missing): Electron e2e skipped');
      const { bundleElectron } = await import('../build/bundle-electron.js');
      const main = await bundleElectron(process.cwd());
      const electronApp: ElectronApplication = await _electron.launch({
        executablePath: binary!,
        args: [main],
        env: { ...process.env, COMPOSER_DATA_DIR: mkdtempSync(join(tmpdir(), 'composer-e2e-electron-')) },
      });
      const win = await electronApp.firstWindow();
      await win.waitForSelector('.app');
      await use(win);
      await electronApp.close();
      return;
    }
    const url = process.env.COMPOSER_URL;
    if (!url) throw new Error('COMPOSER_URL is not set: e2e/global-setup.ts did not run');
    // Each spec starts without an earlier spec's autosave (which would raise the recovery prompt).
    rmSync(join(process.env.COMPOSER_DATA_DIR ?? '', 'autosave.graph.json'), { force: true });
    await page.goto(url);
    await page.waitForSelector('.app');
    await use(page);
  },
});

export { expect };
