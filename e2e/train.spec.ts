// Train: a few real training steps of the BLIP-2 template on the built-in shapes dataset, with the live loss chart,
// evaluation metrics, pause/resume and checkpoints.

import { expect, screen, test } from './fixtures.js';
import { openPanel, openTemplate } from './helpers.js';

test('train BLIP-2 on built-in shapes: live loss, eval metrics, pause/resume, checkpoints', async ({ app }) => {
  test.setTimeout(180_000);
  await openTemplate(app, 'blip2');
  await openPanel(app, 'Train');
  const tab = await app.locator('.dock-tab', { hasText: 'Train' }).innerText();
  test.fixme(tab.includes('not available'), 'the trainer (electron/engine/train.ts) is not part of this build');

  await app.getByRole('combobox', { name: 'Recipe' }).selectOption('blip2-stage2');
  await expect(app.getByTestId('trainables')).toContainText('qformer');
  await app.getByRole('spinbutton', { name: 'Steps' }).fill('600');
  await app.getByRole('spinbutton', { name: 'Learning rate' }).fill('0.003');
  await app.locator('.field', { hasText: /^Batch/ }).locator('input').fill('2');
  await app.locator('.field', { hasText: /^Samples/ }).locator('input').fill('32');
  await app.locator('.field', { hasText: /^Eval every/ }).locator('input').fill('100');
  await app.locator('.field', { hasText: /^Save every/ }).locator('input').fill('300');
  await app.getByRole('button', { name: 'Start', exact: true }).click();

  const status = app.getByTestId('train-status');
  await expect(status).toContainText(/step [1-9]\d*\/600/, { timeout: 90_000 });
  await app.getByRole('button', { name: 'Pause' }).click();
  await expect(status).toContainText('paused', { timeout: 30_000 });
  const pausedAt = await status.innerText();
  await app.waitForTimeout(1200);
  expect(await status.innerText(), 'no steps while paused').toBe(pausedAt);
  await screen(app, '30-train-paused');
  await app.getByRole('button', { name: 'Resume' }).click();
  await expect(status).toContainText(/done after/, { timeout: 120_000 });
  await expect(status).toContainText(/step 600\/600 · loss \d/);
  await expect(app.locator('.eval-metrics')).toContainText(/Eval at step \d+/);
  // The chart has drawn its series (uPlot renders a canvas and a legend with the loss).
  await expect(app.getByTestId('loss-chart').locator('canvas')).toBeVisible();
  await expect(app.getByTestId('loss-chart').locator('.u-legend')).toContainText('loss');
  await expect(app.getByTestId('checkpoints').locator('li').first()).toBeVisible();
  await app.getByTestId('checkpoints').locator('li').first().getByRole('button', { name: 'Resume from' }).click();
  await expect(app.locator('.resume-note')).toContainText('step-');
  await screen(app, '31-train-done');
  await app.locator('button[aria-label="Toggle theme"]').click();
  await screen(app, '32-train-dark');
});
