// "Run chaos" end to end: headless Chromium fills in the dashboard's chaos
// form (a few seconds, a fault every ~300 ms) on a real demo cluster
// (coordinator + participant processes), watches faults land, and waits
// for the verdict: PASS, with every committed transfer on both ledgers,
// every aborted one on none, and the total conserved. The cluster is then
// back to every node up, and the balances are put back as they were.
//
//   E2E_BASE_URL=http://127.0.0.1:8000 node --test e2e/chaos.test.mjs
//
// Screenshots go to test-output/e2e/ (chaos-verdict.png); with
// E2E_DOCS_SHOT=1 the verdict is also saved as docs/chaos-verdict.png (the
// README's picture).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { balances, openBrowser, postTransfer, watch } from './browser.mjs';

const BASE_URL = process.env.E2E_BASE_URL;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.resolve(HERE, '..', 'test-output', 'e2e');
const DOCS = path.resolve(HERE, '..', 'docs');
/** The run, its settling (nodes restart, in-doubt transactions resolve) and the audit, on a loaded machine. */
const VERDICT_TIMEOUT_MS = 240_000;
// Transfers refused while a node or the engine is down, and the 409 of an aborted transfer.
const EXPECTED_HTTP_ERRORS = /status of (409|503)\b/;

const byTestId = (id) => `[data-testid="${id}"]`;

/**
 * Puts every balance back to `before` with ordinary transfers (the total
 * is conserved, so what some accounts gained the others lost): the files
 * after this one share the cluster, and a run can leave an account nearly
 * empty, too poor for the transfers they expect to commit.
 */
async function restore(before) {
  const now = await balances(BASE_URL);
  const gained = Object.keys(before).map((id) => ({ id, cents: now[id] - before[id] }));
  const payers = gained.filter((g) => g.cents > 0);
  const payees = gained.filter((g) => g.cents < 0).map((g) => ({ id: g.id, cents: -g.cents }));
  for (const payer of payers) {
    for (const payee of payees) {
      const amount = Math.min(payer.cents, payee.cents);
      if (amount <= 0) continue;
      const tx_id = `e2e-restore-${payer.id}-${payee.id}-${Date.now()}`;
      const { status, body } = await postTransfer(BASE_URL, { from: payer.id, to: payee.id, amount_cents: amount, tx_id });
      assert.equal(status, 200, `restoring ${payee.id}: ${JSON.stringify(body)}`);
      payer.cents -= amount;
      payee.cents -= amount;
    }
  }
  assert.deepEqual(await balances(BASE_URL), before, 'the balances are back to what the run found');
}

test('run chaos: a short run from the page ends PASS with the audit figures', { timeout: 400_000, skip: !BASE_URL && 'E2E_BASE_URL is not set' }, async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const { page, close } = await openBrowser('tpc-e2e-');
  const problems = [];
  watch(page, problems, EXPECTED_HTTP_ERRORS);
  const before = await balances(BASE_URL);
  try {
    await page.goto(BASE_URL);
    await page.locator(byTestId('connection')).filter({ hasText: 'live' }).waitFor({ timeout: 30_000 });
    const panel = page.locator(byTestId('chaos-panel'));
    await panel.waitFor({ timeout: 30_000 });

    // A value out of range is refused by the form, before any request.
    await panel.locator(byTestId('chaos-seconds')).fill('0');
    await panel.locator(byTestId('chaos-start')).click();
    await panel.locator(byTestId('chaos-error')).filter({ hasText: 'Seconds' }).waitFor({ timeout: 10_000 });

    await panel.locator(byTestId('chaos-seconds')).fill('5');
    await panel.locator(byTestId('chaos-clients')).fill('3');
    await panel.locator(byTestId('chaos-interval')).fill('300');
    await panel.locator(byTestId('chaos-start')).click();
    await panel.locator(`${byTestId('chaos-run')}[data-state="running"]`).waitFor({ timeout: 30_000 });
    // While it runs: a Stop button, and faults listed as they land.
    await panel.locator(byTestId('chaos-stop')).waitFor({ timeout: 10_000 });
    await page.waitForFunction(
      (sel) => Number(document.querySelector(sel)?.textContent ?? '0') > 0,
      byTestId('chaos-faults'),
      { timeout: 60_000 },
    );

    const verdict = panel.locator(byTestId('chaos-verdict'));
    await verdict.waitFor({ timeout: VERDICT_TIMEOUT_MS });
    await verdict.scrollIntoViewIfNeeded();
    await panel.screenshot({ path: path.join(SHOTS, 'chaos-verdict.png') });
    if (process.env.E2E_DOCS_SHOT) {
      await panel.screenshot({ path: path.join(DOCS, 'chaos-verdict.png') });
    }
    assert.equal(await verdict.getAttribute('data-pass'), 'true', await verdict.innerText());
    assert.match(await verdict.innerText(), /PASS/);

    // The figures shown agree with each other: all committed on both
    // ledgers, all aborted on none, the total conserved.
    const committed = (await panel.locator(byTestId('chaos-committed')).innerText()).match(/^(\d+) of (\d+) /);
    assert.ok(committed, 'the committed figure');
    assert.equal(committed[1], committed[2]);
    assert.ok(Number(committed[2]) > 0, 'something committed');
    const aborted = (await panel.locator(byTestId('chaos-aborted')).innerText()).match(/^(\d+) of (\d+) /);
    assert.ok(aborted, 'the aborted figure');
    assert.equal(aborted[1], aborted[2]);
    assert.match(await panel.locator(byTestId('chaos-total')).innerText(), /conserved/);
    const requests = Number(await panel.locator(byTestId('chaos-requests')).innerText());
    assert.ok(requests >= Number(committed[2]), `${requests} requests, ${committed[2]} committed`);

    // The API says the same, and the run left every node up.
    const run = await (await fetch(`${BASE_URL}/api/chaos`)).json();
    assert.equal(run.state, 'finished');
    assert.equal(run.verdict.pass, true);
    assert.equal(String(run.verdict.committed), committed[2]);
    const cluster = await (await fetch(`${BASE_URL}/api/cluster`)).json();
    assert.deepEqual(cluster.nodes.map((n) => n.status), cluster.nodes.map(() => 'up'));
    // The button is back for another run.
    await panel.locator(byTestId('chaos-start')).waitFor({ timeout: 10_000 });

    await restore(before);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});
