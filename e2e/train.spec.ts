// Train: a few real training steps of the BLIP-2 template on the built-in shapes dataset, with the live loss chart,
// evaluation metrics and checkpoints (pause/resume/stop are covered by the host tests of the train job).

import { expect, screen, test } from './fixtures.js';
import { openPanel, openTemplate } from './helpers.js';

test('train BLIP-2 for 20 steps on built-in shapes: the loss chart moves, eval metrics, checkpoints', async ({ app }) => {
  test.setTimeout(300_000);
  await openTemplate(app, 'blip2');
  await openPanel(app, 'Train');
  const tab = await app.locator('.dock-tab', { hasText: 'Train' }).innerText();
  test.fixme(tab.includes('not available'), 'the trainer (electron/engine/train.ts) is not part of this build');

  await app.getByRole('combobox', { name: 'Recipe' }).selectOption('blip2-stage2');
  await expect(app.getByTestId('trainables')).toContainText('qformer');
  await app.getByRole('spinbutton', { name: 'Steps' }).fill('20');
  await app.getByRole('spinbutton', { name: 'Learning rate' }).fill('0.003');
  await app.locator('.field', { hasText: /^Batch/ }).locator('input').fill('2');
  await app.locator('.field', { hasText: /^Samples/ }).locator('input').fill('32');
  await app.locator('.field', { hasText: /^Eval every/ }).locator('input').fill('10');
  await app.locator('.field', { hasText: /^Save every/ }).locator('input').fill('10');
  await app.getByRole('button', { name: 'Start', exact: true }).click();

  const status = app.getByTestId('train-status');
  // Building the training graph (autodiff, sessions) takes a while on a busy machine before step 1.
  await expect(status).toContainText(/step [1-9]\d*\/20/, { timeout: 150_000 });
  await expect(status).toContainText(/(stopped|done) after/, { timeout: 150_000 });
  await expect(status).toContainText(/· loss \d/);
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
