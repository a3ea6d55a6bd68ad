'use strict';
// hush-client (through `hush listen`) and pusher-js subscribed to the same
// private-encrypted- channel receive the same server event, both decrypted.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const { startServer, hushBinary, MAIN_APP } = require('../lib/server');
const { sdk, pusherClient, channelAuthHandler, once, cleanupClients } = require('../lib/clients');

const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');

let srv;
let api;
before(async () => {
  srv = await startServer();
  api = sdk(srv, MAIN_APP, { encryptionMasterKeyBase64: MASTER_KEY });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});

/** Starts `hush listen` and resolves once it reports `subscribed to` for every channel. */
function hushListen(channels, extraArgs = []) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('HUSH_')) delete env[k];
  Object.assign(env, {
    HUSH_URL: `ws://127.0.0.1:${srv.port}`,
    HUSH_APP_KEY: MAIN_APP.key,
    HUSH_APP_SECRET: MAIN_APP.secret,
    HUSH_MASTER_KEY: MASTER_KEY,
  });
  const child = spawn(hushBinary(), ['listen', ...channels, ...extraArgs], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const waiters = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(JSON.parse(l));
    for (const w of waiters.splice(0)) w();
  });
  let stderr = '';
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`hush listen not subscribed: ${stderr}`)), 15000);
    child.stderr.on('data', (d) => {
      stderr += d.toString();
      if ((stderr.match(/subscribed to/g) || []).length >= channels.length) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  async function next(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (lines.length === 0) {
      if (Date.now() > deadline) throw new Error(`no line from hush listen: ${stderr}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
    }
    return lines.shift();
  }
  return { child, ready, next, exited, stderr: () => stderr };
}

test('pusher-js and hush-client receive the same encrypted server event', async () => {
  const channel = 'private-encrypted-shared';
  const p = pusherClient(srv, MAIN_APP, { channelAuthorization: { customHandler: channelAuthHandler(api) } });
  const ch = p.subscribe(channel);
  await once(ch, 'pusher:subscription_succeeded', 5000);
  const listener = hushListen([channel], ['--count', '1']);
  try {
    await listener.ready;
    const gotJs = once(ch, 'order', 5000);
    const payload = { id: 42, items: ['a', 'ü'], note: 'end-to-end' };
    await api.trigger(channel, 'order', payload);
    assert.deepEqual(await gotJs, payload);
    const line = await listener.next();
    assert.deepEqual(line, { channel, event: 'order', data: payload });
    assert.equal(await listener.exited, 0);
  } finally {
    listener.child.kill();
  }
});

test('hush-client reports an event sealed under another key and keeps receiving', async () => {
  const channel = 'private-encrypted-wrongkey';
  const other = sdk(srv, MAIN_APP, {
    encryptionMasterKeyBase64: Buffer.from('another 32-byte master key......').toString('base64'),
  });
  const listener = hushListen([channel], ['--count', '1']);
  try {
    await listener.ready;
    await other.trigger(channel, 'forged', { x: 1 });
    await api.trigger(channel, 'real', { x: 2 });
    const first = await listener.next();
    assert.equal(first.event, 'hush:decryption_failed');
    assert.equal(first.failure, 'decrypt');
    assert.equal(first.data.event, 'forged');
    const second = await listener.next();
    assert.deepEqual(second, { channel, event: 'real', data: { x: 2 } });
    assert.equal(await listener.exited, 0);
  } finally {
    listener.child.kill();
  }
});
