// The dashboard, end to end, in real headless Chromium against a real demo
// cluster (coordinator + participant processes).
//
//   E2E_BASE_URL=http://127.0.0.1:8000 node --test e2e/
//
// scripts/test.sh starts a fresh demo cluster on a free port and sets
// E2E_BASE_URL. The test fails on any page error or console error (that is
// how a broken wasm shows), except the browser's own "Failed to load
// resource" line for the HTTP statuses the API uses on purpose (409 for an
// aborted transfer, 503 while the coordinator recovers).
//
// Screenshots of every step go to test-output/e2e/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBrowser, watch } from './browser.mjs';

const BASE_URL = process.env.E2E_BASE_URL;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.resolve(HERE, '..', 'test-output', 'e2e');
const STEP_TIMEOUT_MS = 30_000;
const EXPECTED_TOTAL = /Total \$2,000\.00 ✓/;
const EXPECTED_HTTP_ERRORS = /status of (409|503)\b/;

/** "$1,234.56" → 123456 */
function cents(text) {
  const match = text.replace(/[,\s]/g, '').match(/(-?)\$(\d+)\.(\d{2})/);
  assert.ok(match, `not an amount: ${text}`);
  const value = Number(match[2]) * 100 + Number(match[3]);
  return match[1] === '-' ? -value : value;
}

const byTestId = (id) => `[data-testid="${id}"]`;
/** Step-mode pause while the in-doubt step crashes a node (generous: a loaded machine). */
const IN_DOUBT_PAUSE_MS = 5_000;

/** A call to the coordinator's API from the test itself; throws on a non-2xx answer. */
async function api(method, url, body) {
  const response = await fetch(new URL(url, BASE_URL), {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${url}: HTTP ${response.status} ${await response.text()}`);
  return response;
}

/** Polls `check` until it returns something truthy (every 100 ms). */
async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('dashboard: transfer, crash, abort, restart, concurrency, history, in doubt', { timeout: 240_000, skip: !BASE_URL && 'E2E_BASE_URL is not set' }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const { page, close } = await openBrowser('tpc-e2e-');
  const problems = [];
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  watch(page, problems, EXPECTED_HTTP_ERRORS);
  const shot = async (name) => {
    // The top bar is sticky: scroll up so it sits at the top of the picture.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };
  const text = async (id) => (await page.locator(byTestId(id)).innerText()).trim();
  const waitForText = (id, pattern, timeout = STEP_TIMEOUT_MS) =>
    page.locator(byTestId(id)).filter({ hasText: pattern }).waitFor({ timeout });
  const transfer = async (from, to, dollars) => {
    await page.selectOption(byTestId('transfer-from'), from);
    await page.selectOption(byTestId('transfer-to'), to);
    await page.fill(byTestId('transfer-amount'), dollars);
    await page.click(byTestId('transfer-submit'));
    const result = page.locator(`${byTestId('transfer-result')}:not([data-outcome="pending"])`);
    await result.waitFor();
    return result;
  };

  try {
    await t.test('the page mounts, goes live and shows the invariant', async () => {
      await page.goto(BASE_URL);
      await waitForText('connection', 'live');
      await waitForText('invariant', EXPECTED_TOTAL);
      await waitForText('node-status-6001', /up/i);
      await waitForText('node-status-6002', /up/i);
      await page.locator(`${byTestId('transfer-from')} option`).first().waitFor({ state: 'attached' });
      // The header links the API's interactive reference, which is served.
      const docs = await page.locator(byTestId('api-docs-link')).getAttribute('href');
      assert.equal(docs, '/api/docs/');
      const reference = await fetch(new URL(docs, BASE_URL));
      assert.equal(reference.status, 200, `${docs} answered ${reference.status}`);
      await shot('01-loaded');
    });

    await t.test('a transfer commits and both balances change', async () => {
      const a = cents(await text('balance-A'));
      const b = cents(await text('balance-B'));
      const result = await transfer('A', 'B', '25.00');
      assert.equal(await result.getAttribute('data-outcome'), 'committed', await result.innerText());
      await waitForText('balance-A', exactly(formatCents(a - 2_500)));
      await waitForText('balance-B', exactly(formatCents(b + 2_500)));
      await page.locator(`${byTestId('sequence-diagram')} .row-label`).filter({ hasText: 'prepare' }).first().waitFor();
      await waitForText('invariant', EXPECTED_TOTAL);
      await shot('02-transfer-committed');
    });

    await t.test('the evidence panel shows what the transfer cost and its audit, each leg found once', async () => {
      await waitForText('audit-verdict', 'audit ✓');
      await waitForText('evidence-round-trips', exactly('2'));
      // Both nodes' PREPARED and COMMITTED, and the coordinator's COMMIT, once every ack is in.
      await waitForText('evidence-forced', exactly('5'));
      await waitForText('audit-A', 'found once');
      await waitForText('audit-B', 'found once');
      assert.match(await text('evidence-process-6001'), /prepared, committed/);
      const panel = page.locator(byTestId('evidence-panel'));
      await panel.scrollIntoViewIfNeeded();
      await panel.screenshot({ path: path.join(SHOTS, '02b-evidence.png') });
    });

    await t.test('crashing node 6002 shows it down; the next transfer aborts with a reason', async () => {
      await page.click(byTestId('crash-6002'));
      await waitForText('node-status-6002', /down|unreachable/i);
      await shot('03-node-6002-down');
      const result = await transfer('A', 'B', '10.00');
      assert.equal(await result.getAttribute('data-outcome'), 'aborted', await result.innerText());
      const reason = await text('transfer-reason');
      assert.ok(reason.length > 0, 'the abort shows its reason');
      await shot('04-transfer-aborted');
    });

    await t.test('restarting node 6002 brings it back up', async () => {
      await page.click(byTestId('restart-6002'));
      await waitForText('node-status-6002', /up/i, 60_000);
      await waitForText('invariant', EXPECTED_TOTAL, 60_000);
      await shot('05-node-6002-restarted');
    });

    await t.test('the concurrency demo runs and the total is still $2,000.00', async () => {
      await page.fill(byTestId('load-count'), '40');
      await page.fill(byTestId('load-concurrency'), '8');
      await page.click(byTestId('load-start'));
      await page.locator(`${byTestId('load-summary')}[data-state="done"]`).waitFor({ timeout: 120_000 });
      const committed = Number(await text('load-committed'));
      assert.ok(committed > 0, 'some of the concurrent transfers committed');
      await waitForText('invariant', EXPECTED_TOTAL);
      await shot('06-concurrency-done');
    });

    await t.test('the stats charts show latency, aborts and the time per phase after those transfers', async () => {
      const p99 = page.locator(byTestId('latency-p99'));
      await page.waitForFunction(
        (sel) => /[1-9]/.test(document.querySelector(sel)?.getAttribute('points')?.replace(/,\d+\.\d/g, '') ?? ''),
        '[data-testid="latency-p99"]',
        { timeout: STEP_TIMEOUT_MS },
      );
      assert.equal((await p99.getAttribute('points')).split(' ').length, 60);
      await waitForText('phase-chart', /phase 1/);
      await page.locator(`${byTestId('phase-chart')} .phase-p99[style*="width: 100.0%"]`).first().waitFor({ timeout: STEP_TIMEOUT_MS });
      // The abort after the crash of node 6002 is in the last minute.
      await page.locator(`${byTestId('abort-chart')} rect`).first().waitFor({ timeout: STEP_TIMEOUT_MS });
    });

    await t.test('clicking a transaction in the history shows its diagram and timeline', async () => {
      await page.locator(`${byTestId('history-table')} tbody tr`).first().click();
      await page.locator(`${byTestId('tx-timeline')} li`).first().waitFor();
      await page.locator(`${byTestId('sequence-diagram')} .row-label`).filter({ hasText: 'prepare' }).first().waitFor();
      await shot('07-history-pinned');
      await page.click(byTestId('follow-live'));
      await page.locator(byTestId('event-log')).waitFor();
    });

    await t.test('a node crashed in step mode leaves a transfer in doubt; the panel explains it', async () => {
      // Step mode pauses after the votes: crash 6002 right then, straight
      // through the API (quicker than the page) so it lands in the pause.
      await api('PUT', '/api/faults', { phase_pause_ms: IN_DOUBT_PAUSE_MS });
      try {
        await waitForText('in-doubt-panel', 'Nothing in doubt');
        const transferDone = api('POST', '/api/transfers', { from: 'A', to: 'B', amount_cents: 500 }).catch(() => null);
        const txId = await until(async () => {
          const view = await (await api('GET', '/api/in-doubt')).json();
          return view.transactions.find((tx) => tx.prepared_on.length === 2)?.tx_id;
        }, STEP_TIMEOUT_MS, 'the transfer is prepared on both nodes');
        await api('POST', '/api/nodes/6002/crash');
        const row = page.locator(byTestId(`in-doubt-tx-${txId}`));
        await row.filter({ hasText: 'node down' }).waitFor();
        assert.match(await row.innerText(), /node 6002/);
        await row.locator(byTestId('in-doubt-age')).filter({ hasText: /waiting/ }).waitFor();
        await shot('08-in-doubt');
        await transferDone;
      } finally {
        await api('PUT', '/api/faults', { phase_pause_ms: 0 });
      }
      await page.click(byTestId('restart-6002'));
      await waitForText('node-status-6002', /up/i, 60_000);
      await waitForText('in-doubt-panel', 'Nothing in doubt', 60_000);
      await waitForText('invariant', EXPECTED_TOTAL, 60_000);
    });

    assert.deepEqual(problems, [], 'no page errors and no console errors');
  } finally {
    await close();
  }
});

/** A pattern matching exactly this text. */
function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

/** 123456 → "$1,234.56" (the same format as shared::money::format_cents). */
function formatCents(value) {
  const sign = value < 0 ? '-' : '';
  const abs = Math.abs(value);
  const dollars = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${sign}$${dollars}.${String(abs % 100).padStart(2, '0')}`;
}
