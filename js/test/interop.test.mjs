// Interoperability with the Rust client: `hush chat` (crates/hush/src/chat.rs, hush-client's
// e2ee module) and the browser (@hush/e2ee over the wasm core) exchange suite 1 envelopes
// through the mailbox in both directions, and compute the same safety number and QR payload.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { hushBinary } from '../lib/hush.mjs';
import { openAs, received, screenshot, sendText, startWorld, until } from './harness.mjs';

let world;
let chat;
before(async () => { world = await startWorld(); });
after(async () => {
  if (chat) chat.kill();
  if (world) await world.stop();
});

/** `hush chat --json` as user `rusty`, talking to `peer`; lines of JSON records. */
function startChat(peer) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-chat-'));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('HUSH_')) delete env[k];
  const child = spawn(hushBinary(), [
    'chat', '--json', '--user', 'rusty', '--peer', peer,
    '--url', `ws://${world.hush.host}:${world.hush.port}`,
    '--app-key', world.hush.app.key, '--app-secret', world.hush.app.secret,
    '--pin-key', world.demo.directory.key, '--pin-vrf', world.demo.directory.vrf,
    '--key-file', path.join(dir, 'rusty.keys'),
  ], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const records = [];
  let buf = '';
  let stderr = '';
  const waiters = new Set();
  child.stdout.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { records.push(JSON.parse(line)); } catch { continue; }
      for (const w of waiters) w();
    }
  });
  child.stderr.on('data', (d) => { stderr += d.toString(); });
  return {
    records,
    kill: () => child.kill('SIGTERM'),
    send: (line) => child.stdin.write(`${line}\n`),
    /** Waits (bounded) for a record matching `pred`. */
    wait(pred, ms = 20000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const r = records.find(pred);
          if (r) { waiters.delete(check); clearTimeout(t); resolve(r); }
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`hush chat: no matching record in ${ms} ms\n${JSON.stringify(records)}\n${stderr.slice(-2000)}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

test('a Rust client (hush chat) and a browser exchange messages both ways', async () => {
  // The browser device first, so that the Rust side finds its keys at once.
  const doctor = await openAs(world, await world.browser.newContext(), 'doctor', { query: 'peer=rusty' });
  chat = startChat('doctor');
  await chat.wait((r) => r.type === 'ready');
  const rustSafety = await chat.wait((r) => r.type === 'safety_number');
  const browserSafety = await until(doctor, () => window.clinic.safety, undefined, 20000);
  assert.equal(browserSafety, rustSafety.safety_number, 'the same safety number on both sides');
  // Each side's QR payload puts its own key first: the doctor scans rusty's code (made by
  // hush-crypto natively) and the wasm core says it matches; one changed byte does not.
  const rustQr = Buffer.from(rustSafety.qr_hex, 'hex').toString('base64');
  const flipped = Buffer.from(rustSafety.qr_hex, 'hex');
  flipped[flipped.length - 1] ^= 1;
  const [match, mismatch] = await doctor.evaluate(([q, f]) => [
    window.clinic.e2ee.compareScanned('rusty', q), window.clinic.e2ee.compareScanned('rusty', f),
  ], [rustQr, flipped.toString('base64')]);
  assert.equal(match, true, "the browser accepts the Rust client's QR code");
  assert.equal(mismatch, false);

  // Rust → browser (mailbox push, suite 1 sealed by hush-client, opened by the wasm core).
  chat.send('hello from Rust');
  await chat.wait((r) => r.type === 'sent' && r.text === 'hello from Rust');
  const m = await received(doctor, 'hello from Rust', 20000);
  assert.equal(m.senderUser, 'rusty');
  assert.equal(m.via, 'mailbox');

  // Browser → Rust (sealed by the wasm core, opened by hush-client).
  const state = await sendText(doctor, 'hello from Chromium');
  assert.equal(state, 'queued', 'rusty is not on the clinic channel: the mailbox carries it');
  const r = await chat.wait((x) => x.type === 'message' && x.text === 'hello from Chromium');
  assert.equal(r.from, 'doctor');
  assert.equal(r.device, await doctor.evaluate(() => window.clinic.e2ee.deviceId));
  assert.ok(!chat.records.some((x) => x.type === 'rejected' || x.type === 'error'), JSON.stringify(chat.records));
  await until(doctor, () => window.clinic.sent.at(-1).li.dataset.state === 'delivered', undefined, 20000);
  await screenshot(doctor, 'interop', 'doctor-and-rust');
});
