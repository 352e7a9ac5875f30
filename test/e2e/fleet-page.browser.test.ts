/// <reference lib="dom" />
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, listen } from '../../src/http/server';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

const CHROMIUM = '/usr/bin/chromium';
// CI installs Debian's chromium (.ci/run); elsewhere the test says what is missing instead of failing.
const runnable = existsSync(CHROMIUM) || Boolean(process.env.CI);

if (!runnable)
  console.warn('fleet page browser test skipped: /usr/bin/chromium is missing (apt-get install chromium)');

describe.skipIf(!runnable)('fleet page in a real browser', () => {
  let s: TestSystem;
  let server: Server;
  let base: string;
  let browser: Browser;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
    const bound = await listen(s.app, '127.0.0.1', 0);
    server = bound.server;
    base = `http://127.0.0.1:${bound.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    if (server) await closeServer(server);
    await s?.close();
  });

  it('asks for credentials: without them the browser cannot enter', async () => {
    const page = await browser.newPage();
    // The Basic challenge reaches the browser, which has nothing to answer with.
    await expect(page.goto(`${base}/admin`)).rejects.toThrow(/AUTH/);
    await page.close();
    const wrong = await browser.newContext({
      httpCredentials: { username: 'ops', password: 'not-the-token' },
    });
    const refused = await (await wrong.newPage()).goto(`${base}/admin`);
    expect(refused?.status()).toBe(401);
    await wrong.close();
  });

  it('shows counts and devices, filters by status, refreshes every round; a person can look at it', async () => {
    const alive = await Promise.all([
      s.device({}, { name: 'amr-alpha' }),
      s.device({}, { name: 'amr-bravo' }),
    ]);
    const gone = await s.device({}, { name: 'amr-charlie' });
    for (const d of [...alive, gone]) await s.waitStatus(d.id, 'CONNECTED', 5000);
    gone.device.silent = true;
    await s.waitStatus(gone.id, 'DISCONNECTED', 8000);

    const context = await browser.newContext({
      httpCredentials: { username: 'ops', password: s.config.ADMIN_TOKEN },
      viewport: { width: 1280, height: 720 },
    });
    const page = await context.newPage();
    await page.goto(`${base}/admin`);
    await page.waitForFunction(() => document.querySelectorAll('#devices tr[data-status]').length === 3);
    expect(await page.textContent('#count-connected b')).toBe('2');
    expect(await page.textContent('#count-disconnected b')).toBe('1');
    const charlie = page.locator('#devices tr', { hasText: 'amr-charlie' });
    expect(await charlie.locator('.status').textContent()).toBe('DISCONNECTED');
    expect(await charlie.locator('.sessions').textContent()).toContain('MISSED_HEARTBEATS');

    await page.click('nav button[data-status="CONNECTED"]');
    await page.waitForFunction(() => document.querySelectorAll('#devices tr[data-status]').length === 2);
    expect(await page.locator('#devices tr[data-status="DISCONNECTED"]').count()).toBe(0);
    await page.click('nav button[data-status=""]');

    // The page refreshes by itself: the lost robot comes back and the counts follow.
    gone.device.silent = false;
    await page.waitForFunction(
      () => document.querySelector('#count-connected b')?.textContent === '3',
      undefined,
      { timeout: 8000 },
    );

    mkdirSync('test/artifacts', { recursive: true });
    await page.screenshot({ path: 'test/artifacts/fleet-page.png', fullPage: true });
    expect(existsSync('test/artifacts/fleet-page.png')).toBe(true);
    await context.close();
  });

  it('the queue dashboard renders', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: 'ops', password: s.config.ADMIN_TOKEN },
    });
    const page = await context.newPage();
    await page.goto(`${base}/admin/queues`);
    await waitFor(async () => (await page.content()).includes('issue-round'), 10_000, 'queues listed');
    await page.screenshot({ path: 'test/artifacts/queue-dashboard.png' });
    await context.close();
  });
});
