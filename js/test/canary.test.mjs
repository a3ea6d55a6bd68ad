// The plaintext canary for browser-sent messages (issue 17; the Rust side's is
// crates/hush/tests/canary.rs): unique secrets travel from Chromium through every E2EE path
// the clinic uses — a live client event, an attachment, the mailbox queued for an offline
// doctor, a sealed client event and a backend suite 0 event on the encrypted notice board — and must appear nowhere the server can see: its trace logs, its SQLite files and its
// memory (dumped with gcore when available, while the mailbox message is queued). The patient's
// device secrets must not be there either. Positive controls prove each search finds what the
// server does see.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Pusher from 'pusher';
import { openAs, received, sendText, startWorld, until, waitPresence } from './harness.mjs';

let world;
before(async () => { world = await startWorld({ env: { RUST_LOG: 'trace' }, keepLogs: true }); });
after(async () => { if (world) await world.stop(); });

const has = (hay, needle) => hay.indexOf(Buffer.isBuffer(needle) ? needle : Buffer.from(needle)) >= 0;

function storeFiles(dir) {
  const data = path.join(dir, 'hush-data');
  return fs.readdirSync(data).filter((f) => f.startsWith('hush.sqlite3')).map((f) => [f, fs.readFileSync(path.join(data, f))]);
}

function coreDump(pid, dir) {
  const r = spawnSync('gcore', ['-o', path.join(dir, 'core'), String(pid)], { encoding: 'utf8', timeout: 60000 });
  const file = path.join(dir, `core.${pid}`);
  if (r.error || r.status !== 0 || !fs.existsSync(file)) return { skipped: `gcore: ${r.error?.message ?? (r.stderr || '').trim().split('\n').pop()}` };
  const mem = fs.readFileSync(file);
  fs.rmSync(file);
  return { mem };
}

test('the plaintext canary: browser-sent messages never reach the server in plaintext', async () => {
  const canary = `canary-${crypto.randomBytes(12).toString('hex')}`;
  const fileCanary = `filecanary-${crypto.randomBytes(12).toString('hex')}`;
  const queuedCanary = `queued-${crypto.randomBytes(12).toString('hex')}`;
  const sealedCanary = `sealed-${crypto.randomBytes(12).toString('hex')}`;
  const boardCanary = `board-${crypto.randomBytes(12).toString('hex')}`;
  const control = crypto.randomBytes(12).toString('hex');

  const docCtx = await world.browser.newContext();
  let doctor = await openAs(world, docCtx, 'doctor');
  const patient = await openAs(world, await world.browser.newContext(), 'patient');
  await waitPresence(doctor);
  await waitPresence(patient);
  await until(patient, () => window.clinic.safety);

  // Live client event and an attachment.
  assert.equal(await sendText(patient, canary), 'sent');
  await received(doctor, canary);
  await patient.setInputFiles('#file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from(`${fileCanary}\n`.repeat(40)) });
  await sendText(patient, 'attachment');
  const f = await received(doctor, 'attachment');
  assert.ok(Buffer.from(f.data.b64, 'base64').toString().includes(fileCanary));
  // The encrypted notice board: a sealed client event, and a suite 0 event from the backend.
  await until(patient, () => window.clinic.noticeReady);
  await until(doctor, () => window.clinic.noticeReady);
  await patient.fill('#notice-text', sealedCanary);
  await patient.click('#notice-sealed');
  await patient.fill('#notice-text', boardCanary);
  await patient.click('#notice-server');
  for (const t of [sealedCanary, boardCanary]) {
    await until(doctor, (x) => window.clinic.notices.some((n) => n.data && n.data.text === x), t);
  }
  // Mailbox: queued for the offline doctor, searched while it waits.
  await doctor.close();
  await waitPresence(patient, false);
  assert.equal(await sendText(patient, queuedCanary), 'queued');

  // The patient's device secrets (a test-only peek at the running device's state).
  const secrets = await patient.evaluate(() => {
    const doc = JSON.parse(new TextDecoder().decode(window.clinic.e2ee.device.save()));
    const out = [];
    const walk = (v, k) => {
      if (v && typeof v === 'object') for (const [kk, vv] of Object.entries(v)) walk(vv, kk);
      else if (typeof v === 'string' && /secret|signing|encryption|identity/i.test(k || '') && v.length >= 40) out.push(v);
    };
    walk(doc.secrets ?? doc);
    return out;
  });
  assert.ok(secrets.length >= 2);
  const forbidden = [
    ['the live canary', Buffer.from(canary)],
    ['the attachment canary', Buffer.from(fileCanary)],
    ['the queued canary', Buffer.from(queuedCanary)],
    ['the sealed-event canary', Buffer.from(sealedCanary)],
    ['the notice-board canary', Buffer.from(boardCanary)],
    ...secrets.flatMap((s, i) => [[`device secret ${i} (base64)`, Buffer.from(s)], [`device secret ${i} (raw)`, Buffer.from(s, 'base64')]]),
  ];

  // Positive controls: a public cache channel keeps its last event in memory; the control
  // user's id is written by the directory; channel names appear in the trace logs.
  await patient.evaluate((c) => new Promise((resolve) => {
    const ch = window.clinic.pusher.subscribe(`cache-${c}`);
    ch.bind('pusher:subscription_succeeded', resolve);
    ch.bind('pusher:cache_miss', resolve);
  }), control);
  const sdk = new Pusher({ appId: world.hush.app.id, key: world.hush.app.key, secret: world.hush.app.secret, host: world.hush.host, port: String(world.hush.port), useTLS: false });
  await sdk.trigger(`cache-${control}`, 'public', { m: control });
  const controlUser = `c${control}`;
  const ctl = await openAs(world, await world.browser.newContext(), controlUser, { query: 'peer=doctor' });
  await until(ctl, () => window.clinic.e2ee && window.clinic.e2ee.card());
  await new Promise((r) => setTimeout(r, 1000)); // logs flushed, WAL written

  const dump = coreDump(world.hush.pid, world.hush.dir);
  if (dump.mem) {
    assert.ok(has(dump.mem, control), 'positive control: the public marker is in the server memory');
    for (const [what, bytes] of forbidden) assert.ok(!has(dump.mem, bytes), `${what} is in the server's memory`);
    console.error(`canary: memory dump of ${dump.mem.length} bytes searched`);
  } else {
    console.error(`canary: SKIPPED the memory dump search: ${dump.skipped}`);
  }
  const files = storeFiles(world.hush.dir);
  assert.ok(files.length > 0);
  assert.ok(files.some(([, b]) => has(b, controlUser)),
    'positive control: the store holds what the server does see (user ids)');
  for (const [name, b] of files) for (const [what, bytes] of forbidden) assert.ok(!has(b, bytes), `${what} is in ${name}`);

  // The doctor comes back and reads it (the mailbox worked), then the server stops: logs.
  doctor = await openAs(world, docCtx, 'doctor');
  await received(doctor, queuedCanary, 20000);
  await world.hush.stop();
  const logs = Buffer.from(world.hush.stderrText() + world.hush.stdoutText());
  assert.ok(has(logs, 'presence-clinic'), 'positive control: channel names are in the trace logs');
  for (const [what, bytes] of forbidden) assert.ok(!has(logs, bytes), `${what} is in the server's logs`);
});
