// What the browser tests share: headless Chromium on a profile of its own,
// a watch for page and console errors, and the few API calls the tests make
// themselves. Not a test file (node --test runs *.test.mjs only).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/**
 * Headless Chromium on a fresh profile in the temp dir (named `prefix…`),
 * with `options` added to the launch's. Resolves to its context, its first
 * page, and `close()`, which also removes the profile.
 */
export async function openBrowser(prefix, options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    ...options,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, close };
}

/**
 * Adds to `problems` every page error and every console error that does
 * not match `expected` (the statuses a test causes on purpose).
 */
export function watch(page, problems, expected) {
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !expected.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
}

/** Every account's balance, from `GET /api/accounts`: { id: cents }. */
export async function balances(baseUrl) {
  const response = await fetch(new URL('/api/accounts', baseUrl));
  if (!response.ok) throw new Error(`GET /api/accounts: HTTP ${response.status}`);
  return Object.fromEntries((await response.json()).map((a) => [a.id, a.balance_cents]));
}

/** A transfer through the API: its status and body (200 committed, 409 aborted). */
export async function postTransfer(baseUrl, body) {
  const response = await fetch(new URL('/api/transfers', baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}
