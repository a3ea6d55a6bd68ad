// The browser tests' harness: hush (the real binary) and the clinic backend on ephemeral
// loopback ports, Debian's chromium driven by playwright-core, one browser context per
// person/device, screenshots into js/screenshots/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHush } from '../lib/hush.mjs';
import { startDemo } from '../demo/server.mjs';

const JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SCREENSHOTS = path.join(JS, 'screenshots');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Launches headless chromium (playwright gives every launch a fresh temporary profile). */
export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
}

/** Starts hush, the demo backend and chromium. */
export async function startWorld(hushOpts = {}) {
  const hush = await startHush(hushOpts);
  const demo = await startDemo({ hush, app: hush.app });
  const browser = await launch();
  return {
    hush,
    demo,
    browser,
    async stop() {
      await browser.close().catch(() => {});
      await demo.close().catch(() => {});
      await hush.stop().catch(() => {});
    },
  };
}

let shot = 0;
const cleared = new Set();
/** Saves a full-page screenshot as js/screenshots/<prefix>-NN-<name>.png; returns its path. */
export async function screenshot(page, prefix, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  if (!cleared.has(prefix)) {
    cleared.add(prefix); // the previous run's shots of this file
    for (const f of fs.readdirSync(SCREENSHOTS)) if (f.startsWith(`${prefix}-`)) fs.rmSync(path.join(SCREENSHOTS, f));
  }
  shot += 1;
  const file = path.join(SCREENSHOTS, `${prefix}-${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Waits until `fn` (evaluated in the page) returns a truthy value; returns it. */
export async function until(page, fn, arg, timeout = 15000) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return await h.jsonValue();
  } catch (e) {
    const errors = await page.evaluate(() => window.clinic && window.clinic.errors).catch(() => 'page gone');
    e.message += `\n  waiting for: ${fn.toString().slice(0, 200)}\n  page errors: ${JSON.stringify(errors)}`;
    throw e;
  }
}

/**
 * Opens a page for `user` in `context`, signs in, and (for a browser without keys) creates the
 * first device's keys and publishes them. `query` is added to the URL (e.g. `echo=1`).
 */
export async function openAs(world, context, user, { query = '', setup = 'new' } = {}) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${user}] page error: ${e.message}`));
  if (process.env.HUSH_JS_VERBOSE) page.on('console', (m) => console.error(`[${user}] ${m.text()}`));
  await page.goto(`${world.demo.url}/${query ? `?${query}` : ''}`);
  let state = await until(page, () => window.clinic && window.clinic.ready);
  if (state === 'login') {
    await page.fill('#login-name', user);
    // The login page reloads itself once the backend answered: wait for that new document's
    // load event, armed before the click. (waitForLoadState('load') returned at once for the
    // already loaded login page, and a slow machine then read the old page's 'login'.)
    const reloaded = page.waitForEvent('load', { timeout: 30000 });
    await page.click('#login-other button');
    await reloaded;
    state = await until(page, () => window.clinic && window.clinic.ready);
  }
  if (state === 'setup' && setup === 'new') {
    await page.click('#setup-new');
    state = await until(page, () => window.clinic.ready === true || (window.clinic.errors.length && window.clinic.errors));
  }
  if (state !== true && setup === 'new') throw new Error(`${user}: page not ready: ${JSON.stringify(state)}`);
  return page;
}

/** Waits until the page is subscribed to the clinic channel and sees `peer` online (or offline). */
export async function waitPresence(page, online = true) {
  await until(page, (on) => window.clinic.subscribed && window.clinic.peerOnline === on, online);
}

/** Types and sends a text message in the page; waits for its state (sent/queued). */
export async function sendText(page, text) {
  const before = await page.evaluate(() => window.clinic.sent.length);
  await page.fill('#text', text);
  await page.click('#send');
  await until(page, (n) => window.clinic.sent.length > n && window.clinic.sent[n].li.dataset.state, before);
  return page.evaluate((n) => window.clinic.sent[n].li.dataset.state, before);
}

/** Waits until the page has received a message whose text is `text`; returns it. */
export async function received(page, text, timeout = 15000) {
  return until(page, (t) => window.clinic.received.find((m) => m.data && m.data.text === t), text, timeout);
}

/** Waits until the page shows an error (optionally with one of `codes`); returns it. */
export async function refused(page, codes, from = 0, timeout = 15000) {
  return until(
    page,
    ([c, n]) => window.clinic.errors.slice(n).find((e) => !c || c.includes(e.code)),
    [codes, from],
    timeout,
  );
}
