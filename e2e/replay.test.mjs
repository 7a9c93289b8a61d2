// Time travel, recorded runs, step mode's hold and the space-time view, in
// real headless Chromium against the demo cluster scripts/test.sh starts:
//
// - scrub back to a moment and read a balance that has since changed; the
//   address names that moment; "Live" comes back to now;
// - export a run, open the page with no cluster at all (dist/ served by a
//   plain file server), import the file, see the same diagram;
// - "Next" lets exactly one held message go; a dropped prepare ends in the
//   vote timeout's abort; a held commit leaves its node in doubt;
// - the node cards arm a crash at a protocol step;
// - the space-time view draws concurrent transactions, a lock wait and a
//   refusal with its reason.
//
//   E2E_BASE_URL=http://127.0.0.1:8000 node --test e2e/replay.test.mjs
//
// It leaves the cluster as it found it: hold off, every node up, the money
// total unchanged. Screenshots go to test-output/e2e/ (the README's two
// come from here: replay-scrubber.png and replay-held-message.png).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBrowser, postTransfer, watch } from './browser.mjs';

const BASE_URL = process.env.E2E_BASE_URL;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const STATIC_DIR = process.env.E2E_STATIC_DIR || path.join(ROOT, 'dist');
const SHOTS = path.join(ROOT, 'test-output', 'e2e');
const STEP_TIMEOUT_MS = 30_000;
const EXPECTED_TOTAL = /Total \$2,000\.00 ✓/;
/** The browser's lines for the statuses the API answers on purpose (aborts, a node down). */
const EXPECTED_HTTP_ERRORS = /status of (409|503)\b/;
/** With no cluster: the API and the live stream are not there, on purpose. */
const EXPECTED_OFFLINE_ERRORS = /status of 404\b|WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/;
const byTestId = (id) => `[data-testid="${id}"]`;

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

/** A transfer through the API: its status and body (200 committed, 409 aborted). */
const transfer = (body) => postTransfer(BASE_URL, body);

const held = async () => (await (await api('GET', '/api/messages')).json()).messages;
const act = (id, action) => api('POST', `/api/messages/${id}`, { action });

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

/** Delivers every held message that `keep` does not want to keep, until `done`. */
async function deliverUntil(done, keep = () => false, what = 'the transfer is done') {
  return until(async () => {
    for (const m of await held()) {
      if (!keep(m)) await act(m.id, 'deliver').catch(() => {});
    }
    return done();
  }, STEP_TIMEOUT_MS, what);
}

/** Serves dist/ and nothing else: the dashboard with no cluster behind it. */
function staticServer(dir) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://x');
    const file = path.join(dir, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end('{"error":"no cluster here"}');
      return;
    }
    response.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Fails the test on page errors and on console errors not `expected`. */
function watchPage(page, problems, expected) {
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  watch(page, problems, expected);
}

test('replay: time travel, recorded runs, held messages, crash at a step, space-time', { timeout: 420_000, skip: !BASE_URL && 'E2E_BASE_URL is not set' }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const { context, page, close } = await openBrowser('tpc-e2e-replay-', { acceptDownloads: true });
  const problems = [];
  watchPage(page, problems, EXPECTED_HTTP_ERRORS);
  const text = async (id) => (await page.locator(byTestId(id)).innerText()).trim();
  const waitForText = (id, pattern, timeout = STEP_TIMEOUT_MS) =>
    page.locator(byTestId(id)).filter({ hasText: pattern }).waitFor({ timeout });
  const shot = async (name) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };
  /** A picture of one panel, without the sticky top bar or toasts over it. */
  const panelShot = async (id, name) => {
    const style = await page.addStyleTag({ content: '.topbar { position: static !important; } .toasts { display: none !important; }' });
    const panel = page.locator(byTestId(id));
    await panel.scrollIntoViewIfNeeded();
    await panel.screenshot({ path: path.join(SHOTS, `${name}.png`) });
    await style.evaluate((element) => element.remove());
  };
  const diagramLabels = async () =>
    (await page.locator(`${byTestId('sequence-diagram')} .row-label`).allTextContents()).map((s) => s.trim());
  const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'tpc-e2e-downloads-'));

  try {
    await t.test('the page goes live and offers time travel', async () => {
      await page.goto(BASE_URL);
      await waitForText('connection', 'live');
      await waitForText('invariant', EXPECTED_TOTAL);
      await waitForText('node-status-6001', /up/i);
      await waitForText('node-status-6002', /up/i);
      await page.locator(byTestId('rewind')).waitFor();
    });

    await t.test('scrubbing back shows a balance that has changed since; the address names the moment', async () => {
      const before = await text('balance-A');
      const info = await (await api('GET', '/api/recording/info')).json();
      assert.equal(info.enabled, true, JSON.stringify(info));
      const { status } = await transfer({ from: 'A', to: 'B', amount_cents: 1_234, tx_id: 'e2e-replay-1' });
      assert.equal(status, 200);
      await until(async () => (await text('balance-A')) !== before, STEP_TIMEOUT_MS, 'the live balance changes');
      const after = await text('balance-A');
      // The recording has the change once its balances event is in.
      const moment = await until(async () => {
        const now = await (await api('GET', '/api/recording/info')).json();
        return now.last_seq > info.last_seq && now.last_seq;
      }, STEP_TIMEOUT_MS, 'the transfer is recorded');
      await page.click(byTestId('rewind'));
      await page.locator(byTestId('travel-banner')).waitFor();
      await waitForText('connection', 'replaying');
      await page.click(byTestId('to-end'));
      await until(async () => (await text('balance-A')) === after, STEP_TIMEOUT_MS, 'the replay ends where live is');
      // Back to the moment before the transfer, with the scrubber.
      const target = await until(async () => {
        const events = await page.evaluate(() => document.querySelector('[data-testid="scrubber"]').max);
        return Number(events) > 0 && Number(events);
      }, STEP_TIMEOUT_MS, 'the scrubber has a range');
      const scrubBack = async () => {
        for (let position = target; position >= 0; position -= 1) {
          await page.locator(byTestId('scrubber')).fill(String(position));
          const seq = Number(await page.locator(byTestId('travel-moment')).getAttribute('data-seq'));
          if (seq <= info.last_seq) break;
        }
        await waitForText('balance-A', before);
      };
      await scrubBack();
      assert.ok(page.url().includes('#t='), `the address names the moment: ${page.url()}`);
      // The README's picture: a moment in the middle of the transfer.
      await until(async () => {
        await page.click(byTestId('step-forward'));
        const labels = await diagramLabels();
        return labels.some((l) => l.startsWith('decide COMMIT'));
      }, STEP_TIMEOUT_MS, 'the replay reaches the commit decision');
      const style = await page.addStyleTag({ content: '.toasts { display: none !important; }' });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(SHOTS, 'replay-scrubber.png'), fullPage: true, clip: { x: 0, y: 0, width: 1440, height: 1700 } });
      await style.evaluate((element) => element.remove());
      // Scrubbed back again for the shared address.
      await scrubBack();
      // The address opens that same moment in a fresh page.
      const shared = await context.newPage();
      watchPage(shared, problems, EXPECTED_HTTP_ERRORS);
      await shared.goto(page.url());
      await shared.locator(byTestId('travel-banner')).waitFor();
      await shared.locator(byTestId('balance-A')).filter({ hasText: before }).waitFor();
      await shared.close();
      // Play at 8× moves on by itself.
      await page.selectOption(byTestId('speed'), '8');
      const position = Number(await page.locator(byTestId('travel-moment')).getAttribute('data-position'));
      await page.click(byTestId('play'));
      await until(async () => Number(await page.locator(byTestId('travel-moment')).getAttribute('data-position')) > position,
        STEP_TIMEOUT_MS, 'playback moves on');
      await page.click(byTestId('go-live'));
      await waitForText('connection', 'live');
      await waitForText('balance-A', after);
      assert.ok(moment > 0);
    });

    await t.test('a run exported and imported with no cluster shows the same diagram', async () => {
      const { status } = await transfer({ from: 'B', to: 'A', amount_cents: 777, tx_id: 'e2e-export-1' });
      assert.equal(status, 200);
      await page.click(byTestId('rewind'));
      await page.locator(byTestId('travel-banner')).waitFor();
      // Its END record comes after the answer: wait until the run shows it.
      await until(async () => {
        await page.click(byTestId('go-live'));
        await page.click(byTestId('rewind'));
        await page.locator(byTestId('travel-banner')).waitFor();
        await page.click(byTestId('to-end'));
        return (await diagramLabels()).some((l) => l.startsWith('END'));
      }, STEP_TIMEOUT_MS, 'the recording holds the whole transfer');
      const replayed = await diagramLabels();
      assert.ok(replayed.some((l) => l.startsWith('start B → A $7.77')), replayed.join(' | '));
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(byTestId('export-range'))]);
      const file = path.join(downloads, 'run.jsonl');
      await download.saveAs(file);
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(JSON.parse(lines[0]).format, 'tpc-recording');
      assert.equal(JSON.parse(lines[1]).kind, 'snapshot');
      // The live "Export run" link is the coordinator's own recording.
      await page.click(byTestId('go-live'));
      const href = await page.locator(byTestId('export-run')).getAttribute('href');
      const served = await (await api('GET', href)).text();
      assert.equal(JSON.parse(served.split('\n')[0]).version, 1);

      const server = await staticServer(STATIC_DIR);
      const offline = await context.newPage();
      watchPage(offline, problems, EXPECTED_OFFLINE_ERRORS);
      try {
        await offline.goto(`http://127.0.0.1:${server.address().port}/`);
        await offline.locator(byTestId('import-file')).setInputFiles(file);
        await offline.locator(byTestId('travel-banner')).filter({ hasText: 'run.jsonl' }).waitFor();
        const imported = async () =>
          (await offline.locator(`${byTestId('sequence-diagram')} .row-label`).allTextContents()).map((s) => s.trim());
        await until(async () => (await imported()).length > 0, STEP_TIMEOUT_MS, 'the imported diagram is drawn');
        assert.deepEqual(await imported(), replayed);
        await offline.screenshot({ path: path.join(SHOTS, 'replay-imported-offline.png'), fullPage: true });
      } finally {
        await offline.close();
        server.close();
      }
    });

    await t.test('held messages: Next lets exactly one go; a dropped prepare ends in the vote timeout', async () => {
      await page.click(byTestId('hold-mode'));
      await waitForText('hold-state', 'holding');
      const answer = transfer({ from: 'A', to: 'B', amount_cents: 500, tx_id: 'e2e-dropped-prepare' });
      await page.locator(`${byTestId('held-count')}`).filter({ hasText: '2' }).waitFor();
      const before = (await held()).map((m) => m.id);
      assert.equal(before.length, 2, JSON.stringify(before));
      await page.click(byTestId('next-message'));
      await page.locator(byTestId(`held-${before[0]}`)).waitFor({ state: 'detached' });
      const after = (await held()).map((m) => m.id);
      assert.ok(!after.includes(before[0]) && after.includes(before[1]), `exactly the oldest went: ${after}`);
      // The other prepare: picked in the diagram, dropped there.
      await page.locator(byTestId(`held-arrow-${before[1]}`)).click();
      await page.locator(byTestId('picked-message')).waitFor();
      await panelShot('protocol-panel', 'replay-held-message');
      await page.click(byTestId(`drop-${before[1]}`));
      await deliverUntil(async () => {
        const r = await Promise.race([answer, new Promise((resolve) => setTimeout(() => resolve(null), 50))]);
        return r;
      });
      const { status, body } = await answer;
      assert.equal(status, 409, JSON.stringify(body));
      assert.equal(body.reason, 'timeout', JSON.stringify(body));
      await page.locator(`${byTestId('sequence-diagram')} .row-label`).filter({ hasText: 'dropped' }).first().waitFor();
    });

    await t.test('a held commit shows its node in doubt until it goes on', async () => {
      const answer = transfer({ from: 'A', to: 'B', amount_cents: 600, tx_id: 'e2e-held-commit' });
      const isCommitTo6002 = (m) => m.message === 'commit' && m.node === '6002';
      const commit = await deliverUntil(async () => (await held()).find(isCommitTo6002), isCommitTo6002,
        'the commit to 6002 is held');
      await page.locator(byTestId('in-doubt-6002')).filter({ hasText: 'held-commit' }).waitFor();
      await shot('replay-held-commit-in-doubt');
      await page.click(byTestId(`deliver-${commit.id}`));
      await page.click(byTestId('hold-mode'));
      await waitForText('hold-state', 'off');
      const { status } = await answer;
      assert.equal(status, 200);
      await page.locator(byTestId('in-doubt-6002')).waitFor({ state: 'detached' });
      await waitForText('invariant', EXPECTED_TOTAL);
    });

    await t.test('the space-time view shows a lock wait and a refusal with its reason', async () => {
      await api('PUT', '/api/faults', { hold_messages: true });
      try {
        const prepares = async (tx) => (await held()).filter((m) => m.tx_id === tx && m.message === 'prepare');
        // Refusal: the younger one holds the locks when the older one asks.
        const older = transfer({ from: 'A', to: 'B', amount_cents: 100, tx_id: 'e2e-older' });
        await until(async () => (await prepares('e2e-older')).length === 2, STEP_TIMEOUT_MS, 'the older is held');
        const younger = transfer({ from: 'A', to: 'B', amount_cents: 100, tx_id: 'e2e-younger' });
        await until(async () => (await prepares('e2e-younger')).length === 2, STEP_TIMEOUT_MS, 'the younger is held');
        for (const m of await prepares('e2e-younger')) await act(m.id, 'deliver');
        const youngVotes = async () => (await held()).filter((m) => m.tx_id === 'e2e-younger' && m.message === 'vote');
        await until(async () => (await youngVotes()).length === 2, STEP_TIMEOUT_MS, 'the younger has voted');
        for (const m of await prepares('e2e-older')) await act(m.id, 'deliver');
        await api('PUT', '/api/faults', { hold_messages: false });
        const [o, y] = await Promise.all([older, younger]);
        assert.equal(o.body.reason, 'lock_conflict', JSON.stringify(o.body));
        assert.equal(y.status, 200);
        // Wait: the younger one asks while the older one holds.
        await api('PUT', '/api/faults', { hold_messages: true });
        const first = transfer({ from: 'B', to: 'A', amount_cents: 100, tx_id: 'e2e-holder' });
        await until(async () => (await prepares('e2e-holder')).length === 2, STEP_TIMEOUT_MS, 'the holder is held');
        for (const m of await prepares('e2e-holder')) await act(m.id, 'deliver');
        await until(async () => (await held()).filter((m) => m.tx_id === 'e2e-holder' && m.message === 'vote').length === 2,
          STEP_TIMEOUT_MS, 'the holder has voted');
        const second = transfer({ from: 'B', to: 'A', amount_cents: 100, tx_id: 'e2e-waiter' });
        await until(async () => (await prepares('e2e-waiter')).length === 2, STEP_TIMEOUT_MS, 'the waiter is held');
        for (const m of await prepares('e2e-waiter')) await act(m.id, 'deliver');
        await api('PUT', '/api/faults', { hold_messages: false });
        const [h, w] = await Promise.all([first, second]);
        assert.equal(h.status, 200);
        assert.equal(w.status, 200, JSON.stringify(w.body));
      } finally {
        await api('PUT', '/api/faults', { hold_messages: false });
      }
      await page.locator(`${byTestId('lock-refusal')}`).filter({ hasText: /older than .*e2e-younger/ }).first().waitFor();
      await page.locator(`${byTestId('lock-wait')}`).filter({ hasText: /e2e-waiter waits for .*e2e-holder/ }).first().waitFor();
      await panelShot('spacetime-panel', 'replay-spacetime');
      await waitForText('invariant', EXPECTED_TOTAL);
    });

    await t.test('the node cards crash a node at a protocol step', async () => {
      await page.click(byTestId('crash-prepared-6002'));
      const { status, body } = await transfer({ from: 'A', to: 'B', amount_cents: 300, tx_id: 'e2e-crash-prepared' });
      assert.equal(status, 409, JSON.stringify(body));
      await waitForText('node-status-6002', /down/i);
      await page.click(byTestId('restart-6002'));
      await waitForText('node-status-6002', /up/i, 60_000);
      await page.click(byTestId('crash-applied-6001'));
      const applied = await transfer({ from: 'A', to: 'B', amount_cents: 300, tx_id: 'e2e-crash-applied' });
      assert.equal(applied.status, 200, JSON.stringify(applied.body));
      await waitForText('node-status-6001', /down/i);
      await page.click(byTestId('restart-6001'));
      await waitForText('node-status-6001', /up/i, 60_000);
      await waitForText('invariant', EXPECTED_TOTAL, 60_000);
    });

    assert.deepEqual(problems, [], 'no page errors and no console errors');
  } finally {
    await api('PUT', '/api/faults', { hold_messages: false }).catch(() => {});
    await close();
    fs.rmSync(downloads, { recursive: true, force: true });
  }
});
