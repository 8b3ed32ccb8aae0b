// Compare: the BLIP-2 Q-Former against an MLP projector, side by side on a small image set, through the real engine.

import { expect, screen, test } from './fixtures.js';
import { openPanel, openTemplate, testImage } from './helpers.js';

test('compare the Q-Former with alternatives on an image set: output, latency and parameters per variant', async ({ app }) => {
  test.setTimeout(120_000);
  await openTemplate(app, 'blip2');
  await openPanel(app, 'Compare');
  const available = await app.locator('.dock-tab', { hasText: 'Compare' }).innerText();
  test.fixme(available.includes('not available'), 'the compare engine (electron/engine/compare.ts) is not part of this build');

  await expect(app.getByRole('combobox', { name: 'Node to compare' })).toHaveValue('qformer');
  await app.locator('.candidates label', { hasText: /^MLP/ }).locator('input').check();
  await app.locator('.candidates label', { hasText: /^Linear/ }).locator('input').check();
  await app.getByTestId('compare-images-input').setInputFiles([
    await testImage('red.png', '#dc2626'),
    await testImage('green.png', '#16a34a'),
    await testImage('blue.png', '#2563eb'),
  ]);
  await expect(app.locator('.image-set img')).toHaveCount(3);
  await app.getByRole('button', { name: 'Compare', exact: true }).click();

  const table = app.getByTestId('compare-table');
  await expect(table).toBeVisible();
  await expect(app.locator('.dock-body .muted', { hasText: 'Running variants' })).toHaveCount(0, { timeout: 90_000 });
  await expect(table.locator('tbody tr')).toHaveCount(3);
  for (let v = 0; v < 3; v++) {
    const row = app.getByTestId(`compare-row-${v}`);
    await expect(row.locator('.compare-cell')).toHaveCount(3);
    await expect(row.locator('.compare-cell .status-error')).toHaveCount(0);
    // Latency, total and trainable parameters are filled in for every variant.
    const numbers = row.locator('td.mono');
    await expect(numbers.nth(0)).toHaveText(/\d+ ms/);
    await expect(numbers.nth(1)).toHaveText(/\d/);
    await expect(numbers.nth(2)).toHaveText(/\d/);
  }
  await expect(app.getByTestId('compare-row-0')).toContainText('Q-Former');
  const alternatives = (await app.getByTestId('compare-row-1').innerText()) + (await app.getByTestId('compare-row-2').innerText());
  expect(alternatives).toContain('MLP');
  expect(alternatives).toContain('Linear');
  // Different projectors have different sizes.
  const params = await Promise.all([0, 1, 2].map((v) => app.getByTestId(`compare-row-${v}`).locator('td.mono').nth(1).innerText()));
  expect(new Set(params).size).toBeGreaterThan(1);
  await screen(app, '20-compare');
  await app.locator('button[aria-label="Toggle theme"]').click();
  await screen(app, '21-compare-dark');
});
