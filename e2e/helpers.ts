// Shared steps of the job specs: open a template, make a test image, select a node.

import sharp from 'sharp';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, type Page } from '@playwright/test';

export async function openTemplate(app: Page, id: string): Promise<void> {
  // The catalogue has loaded (and with it the start-up work such as the autosave check).
  await expect(app.locator('.palette-item').first()).toBeVisible({ timeout: 30_000 });
  await app.getByRole('button', { name: 'Templates' }).first().click();
  const card = app.locator(`.template-card[data-template="${id}"]`);
  await expect(card, `graphs/${id}.graph.json must exist`).toBeVisible({ timeout: 30_000 });
  await card.click();
  await expect(app.locator(`[data-testid^="node-"]`).first()).toBeVisible();
  await app.waitForTimeout(400);
}

/** A small PNG on disk: a coloured square on a grey background. */
export async function testImage(name: string, colour: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'composer-e2e-img-'));
  const path = join(dir, name);
  const square = await sharp({ create: { width: 28, height: 28, channels: 3, background: colour } }).png().toBuffer();
  await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } })
    .composite([{ input: square, left: 18, top: 18 }])
    .png()
    .toFile(path);
  return path;
}

/** Selects a node by clicking its title (not a handle). */
export async function selectNode(app: Page, id: string): Promise<void> {
  await app.getByTestId(`node-${id}`).locator('.cnode-title').click();
  await expect(app.locator('.inspector-head')).toContainText(id);
}

export async function openPanel(app: Page, name: 'Run' | 'Compare' | 'Train' | 'Export' | 'Models'): Promise<void> {
  const tab = app.getByRole('tab', { name: new RegExp(`^${name}`) });
  if ((await tab.getAttribute('aria-selected')) !== 'true') await tab.click();
  await expect(tab).toHaveAttribute('aria-selected', 'true');
}
