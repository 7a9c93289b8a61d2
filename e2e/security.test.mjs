// The coordinator's HTTP guard in a real browser, against a coordinator of
// its own started with an API token (so the shared demo cluster of
// dashboard.test.mjs is never touched):
//
// - a page of another origin cannot move money or open the live stream;
// - the dashboard asks for the API token when a change is refused with 401,
//   keeps it for the tab, and every change works from then on.
//
//   E2E_BASE_URL=... node --test e2e/security.test.mjs
//
// Runs where dashboard.test.mjs runs (E2E_BASE_URL set, as scripts/test.sh
// does). It starts target/debug/backend (or E2E_BACKEND) serving dist/ (or
// E2E_STATIC_DIR), so build both first.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { balances as accountBalances, openBrowser, watch } from './browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const BACKEND = process.env.E2E_BACKEND || path.join(ROOT, 'target', 'debug', 'backend');
const STATIC_DIR = process.env.E2E_STATIC_DIR || path.join(ROOT, 'dist');
const STEP_TIMEOUT_MS = 30_000;
const START_TIMEOUT_MS = 60_000;
const TOKEN = 'e2e-token-7c2f9a41d0b3e865';
/** The browser's own line for the statuses refused on purpose here. */
const EXPECTED_HTTP_ERRORS = /status of (401|409)\b/;
const byTestId = (id) => `[data-testid="${id}"]`;

const skip = !process.env.E2E_BASE_URL
  ? 'E2E_BASE_URL is not set'
  : !fs.existsSync(BACKEND)
    ? `${BACKEND} is missing (cargo build -p backend -p participant)`
    : !fs.existsSync(path.join(STATIC_DIR, 'index.html')) && `${STATIC_DIR} has no dashboard (trunk build --release --dist dist)`;

/** Starts a demo coordinator with an API token; resolves to { url, stop }. */
async function startCoordinator(dir) {
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, `${TOKEN}\n`);
  const ready = path.join(dir, 'ready');
  const child = spawn(BACKEND, [
    '--demo', '--listen', '127.0.0.1:0', '--node-port-base', '0', '--data-dir', path.join(dir, 'data'),
    '--static-dir', STATIC_DIR, '--ready-file', ready, '--api-token-file', tokenFile,
  ], { detached: true, stdio: ['ignore', 'ignore', 'inherit'] });
  // The coordinator and its participants share its process group.
  const stop = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ } };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(fs.existsSync(ready) && fs.readFileSync(ready, 'utf8').trim())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      stop();
      throw new Error(`the coordinator did not start (exit ${child.exitCode})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url: `http://${fs.readFileSync(ready, 'utf8').trim()}`, stop };
}

/** A page on another origin (another port of 127.0.0.1), as a site the user visits. */
async function startForeignSite() {
  const server = http.createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end('<!doctype html><title>some other site</title><p>nothing to see</p>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

test('security: foreign pages are refused; the dashboard asks for the API token', { timeout: 180_000, skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpc-e2e-security-'));
  const coordinator = await startCoordinator(dir);
  const site = await startForeignSite();
  const { context, page, close } = await openBrowser('tpc-e2e-security-profile-');
  const read = async (url) => (await fetch(new URL(url, coordinator.url))).json();
  const balances = () => accountBalances(coordinator.url);
  try {
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const problems = [];
    watch(page, problems, EXPECTED_HTTP_ERRORS);
    await page.goto(coordinator.url);
    await page.locator(`${byTestId('connection')}`).filter({ hasText: 'live' }).waitFor();
    await page.locator(byTestId('node-status-6002')).filter({ hasText: /up/i }).waitFor();
    const before = await balances();

    await t.test('a page of another origin cannot transfer, crash a node or read the live stream', async () => {
      const evil = await context.newPage();
      await evil.goto(site.url);
      const wsMessages = await evil.evaluate(async (base) => {
        const transfer = JSON.stringify({ from: 'A', to: 'B', amount_cents: 100, tx_id: 'from-another-site' });
        // Simple requests: the browser sends them without asking first.
        const simple = { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' } };
        await fetch(`${base}/api/transfers`, { ...simple, body: transfer }).catch(() => null);
        await fetch(`${base}/api/nodes/6002/crash`, { method: 'POST', mode: 'no-cors' }).catch(() => null);
        return new Promise((resolve) => {
          let received = 0;
          const socket = new WebSocket(`${base.replace('http://', 'ws://')}/ws`);
          socket.onmessage = () => { received += 1; };
          socket.onerror = () => resolve(received);
          socket.onclose = () => resolve(received);
          setTimeout(() => { socket.close(); resolve(received); }, 5_000);
        });
      }, coordinator.url);
      await evil.close();
      assert.equal(wsMessages, 0, 'the live stream sent nothing to the other site');
      assert.deepEqual(await balances(), before, 'no money moved');
      const response = await fetch(new URL('/api/transactions/from-another-site', coordinator.url));
      assert.equal(response.status, 404, 'the transfer never ran');
      const node = (await read('/api/cluster')).nodes.find((n) => n.id === '6002');
      assert.equal(node.status, 'up', 'node 6002 was not crashed');
    });

    await t.test('a change without the token shows the token field; with it, changes work', async () => {
      const transfer = async () => {
        await page.fill(byTestId('transfer-amount'), '1.00');
        await page.click(byTestId('transfer-submit'));
        const result = page.locator(`${byTestId('transfer-result')}:not([data-outcome="pending"])`);
        await result.waitFor();
        return result;
      };
      const refused = await transfer();
      assert.equal(await refused.getAttribute('data-outcome'), 'error', await refused.innerText());
      assert.match(await refused.innerText(), /401/);
      await page.locator(byTestId('token-prompt')).waitFor();
      assert.deepEqual(await balances(), before, 'the refused transfer moved nothing');

      await page.fill(byTestId('token-input'), `  ${TOKEN} `);
      await page.click(byTestId('token-save'));
      await page.locator(byTestId('token-prompt')).waitFor({ state: 'detached' });
      const committed = await transfer();
      assert.equal(await committed.getAttribute('data-outcome'), 'committed', await committed.innerText());
      await page.click(byTestId('crash-6002'));
      await page.locator(byTestId('node-status-6002')).filter({ hasText: /down|unreachable/i }).waitFor();
      await page.click(byTestId('restart-6002'));
      await page.locator(byTestId('node-status-6002')).filter({ hasText: /up/i }).waitFor({ timeout: 60_000 });
    });

    assert.deepEqual(problems, [], 'no page errors and no unexpected console errors');
  } finally {
    await close();
    site.close();
    coordinator.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
