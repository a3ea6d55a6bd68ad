// A malicious server's key directory, seen from Chromium: a proxy between the page and hush
// (playwright's routeWebSocket) rewrites `hush:response` frames. The wasm core must refuse a
// tree head whose signature is broken and a rolled-back (older) directory answer, and the page
// must show the refusal instead of using the keys.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openAs, refused, screenshot, startWorld, until } from './harness.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { if (world) await world.stop(); });

/** Routes the page's WebSocket through `edit(frameText) → frameText` for server → page frames. */
async function proxy(page, edit) {
  await page.routeWebSocket(/\/app\//, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((msg) => ws.send(typeof msg === 'string' ? edit(msg) : msg));
  });
}

function parseResponse(msg) {
  try {
    const f = JSON.parse(msg);
    if (f.event !== 'hush:response') return null;
    return { frame: f, data: JSON.parse(f.data) };
  } catch {
    return null;
  }
}

test('attack_directory_head_forged_refused: a tree head with a broken signature is refused', async () => {
  const doctor = await openAs(world, await world.browser.newContext(), 'doctor');
  assert.ok(await doctor.evaluate(() => window.clinic.e2ee.card()));
  const page = await (await world.browser.newContext()).newPage();
  let forged = 0;
  await proxy(page, (msg) => {
    const r = parseResponse(msg);
    if (!r || !r.data.result || typeof r.data.result.head !== 'string') return msg;
    const head = Buffer.from(r.data.result.head, 'base64');
    head[head.length - 1] ^= 0x01; // the signature's last byte
    r.data.result.head = head.toString('base64');
    r.frame.data = JSON.stringify(r.data);
    forged += 1;
    return JSON.stringify(r.frame);
  });
  await page.goto(`${world.demo.url}/`);
  await until(page, () => window.clinic && window.clinic.ready === 'login');
  await page.fill('#login-name', 'patient');
  await page.click('#login-other button');
  await until(page, () => window.clinic && window.clinic.ready === 'setup');
  await page.click('#setup-new');
  const err = await refused(page, null, 0, 20000);
  assert.equal(err.code, 'bad-signature', JSON.stringify(err));
  assert.ok(forged >= 1);
  assert.notEqual(await page.evaluate(() => window.clinic.ready), true, 'the device did not accept the forged head');
  await until(page, () => document.querySelectorAll('#errors li').length > 0);
  await screenshot(page, 'directory', 'forged-head-refused');
});

test('attack_directory_rollback_refused: an older directory answer replayed for a new lookup is refused', async () => {
  const ctx = await world.browser.newContext();
  const page = await ctx.newPage();
  const seen = [];
  let replay = null; // when set: the next lookup answer is replaced by this old one
  await proxy(page, (msg) => {
    const r = parseResponse(msg);
    if (!r || !r.data.result || !r.data.result.users) return msg;
    if (replay) {
      const old = replay;
      replay = null;
      return JSON.stringify({ ...r.frame, data: JSON.stringify({ ...old, id: r.data.id }) });
    }
    seen.push(r.data);
    return msg;
  });
  await page.goto(`${world.demo.url}/`);
  await until(page, () => window.clinic && window.clinic.ready === 'login');
  await page.fill('#login-name', 'rollie');
  await page.click('#login-other button');
  await until(page, () => window.clinic && window.clinic.ready === 'setup');
  await page.click('#setup-new');
  await until(page, () => window.clinic.ready === true);
  await page.evaluate(() => window.clinic.e2ee.lookup(['doctor']));
  assert.ok(seen.length >= 1, 'a lookup answer was recorded');
  const old = seen[seen.length - 1];
  // The directory moves on (a new user publishes: a new epoch), and this device sees it.
  await openAs(world, await world.browser.newContext(), 'newcomer');
  await page.evaluate(() => window.clinic.e2ee.lookup(['doctor', 'newcomer']));
  // The server now answers with the old epoch.
  replay = old;
  const code = await page.evaluate(() => window.clinic.e2ee.lookup(['doctor']).then(() => 'accepted', (e) => e.code));
  assert.equal(replay, null, 'the old answer was served');
  assert.equal(code, 'rollback');
});
