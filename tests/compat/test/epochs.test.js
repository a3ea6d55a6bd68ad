'use strict';
// Key epochs and sealed events (docs/E2EE-CHANNELS.md) seen from pusher-js 8.6.0.
//
// The channel key of epoch e >= 1 is derived here with node's own HKDF, independently of the Rust
// code; `hush trigger --epoch N` (hush-sdk) seals the events. pusher-js knows nothing of epochs:
// it reads `shared_secret` from the auth response, ignores `epoch`, and when a rotation makes an
// event undecryptable it re-authorizes once and gets the new key. That is the whole
// compatibility claim, tested here.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, runHush, MAIN_APP } = require('../lib/server');
const { RawClient } = require('../lib/ws-client');
const { privateAuth } = require('../lib/auth');
const { sdk, pusherClient, channelAuthHandler, once, cleanupClients, Collector } = require('../lib/clients');

const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP } } });
  api = sdk(srv, MAIN_APP, { encryptionMasterKeyBase64: MASTER_KEY });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

/** Kₑ = HKDF-SHA256(salt "hush channel epoch key v1", IKM master, info len‖name‖u64be(e)). */
function epochKey(channel, epoch) {
  if (epoch === 0) {
    return crypto.createHash('sha256').update(channel).update(Buffer.from(MASTER_KEY, 'base64')).digest();
  }
  const name = Buffer.from(channel, 'utf8');
  const info = Buffer.alloc(4 + name.length + 8);
  info.writeUInt32BE(name.length, 0);
  name.copy(info, 4);
  info.writeBigUInt64BE(BigInt(epoch), 4 + name.length);
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(MASTER_KEY, 'base64'), 'hush channel epoch key v1', info, 32));
}

/** An auth handler whose backend is at `state.epoch`: the Node SDK signs, the key is Kₑ. */
function epochAuth(state) {
  return channelAuthHandler(api, {
    tamper: (res, params) => {
      state.authorizations += 1;
      const out = { auth: res.auth, shared_secret: epochKey(params.channelName, state.epoch).toString('base64') };
      if (state.epoch !== 0) out.epoch = state.epoch;
      return out;
    },
  });
}

function hushTrigger(channel, event, data, { epoch = 0, sealed = false } = {}) {
  const args = ['trigger', '--url', srv.httpBase(), '--app-id', MAIN_APP.id, '--key', MAIN_APP.key,
    '--secret', MAIN_APP.secret, '--master-key', MASTER_KEY, '--epoch', String(epoch),
    '-c', channel, '-e', event, '-d', data];
  if (sealed) args.push('--sealed');
  return runHush(args).then((r) => {
    assert.equal(r.code, 0, r.stderr);
    return r;
  });
}

test('node HKDF and hush-sdk agree on the epoch-3 key', async () => {
  // A raw subscriber opens what `hush trigger --epoch 3` (hush-sdk) sealed, with the key node
  // derived on its own; Pusher's epoch-0 key must not open it.
  const channel = 'private-encrypted-kat';
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const r = await c.subscribe(channel, { auth: privateAuth(MAIN_APP, c.socketId, channel) });
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  await hushTrigger(channel, 'secret', '{"n":1}', { epoch: 3 });
  const m = await c.next('secret');
  const env = JSON.parse(m.data);
  assert.equal(env.epoch, 3);
  const nacl = require('tweetnacl');
  const opened = nacl.secretbox.open(
    Buffer.from(env.ciphertext, 'base64'),
    Buffer.from(env.nonce, 'base64'),
    epochKey(channel, 3),
  );
  assert.ok(opened, 'node could not open an epoch-3 event with its own HKDF key');
  assert.equal(Buffer.from(opened).toString(), '{"n":1}');
  assert.equal(nacl.secretbox.open(Buffer.from(env.ciphertext, 'base64'), Buffer.from(env.nonce, 'base64'), epochKey(channel, 0)), null);
});

test('pusher-js receives epoch-N events and follows a key rotation by re-authorizing once', async () => {
  const channel = 'private-encrypted-rotating';
  const state = { epoch: 1, authorizations: 0 };
  const p = pusherClient(srv, MAIN_APP, { channelAuthorization: { customHandler: epochAuth(state) } });
  const ch = p.subscribe(channel);
  await once(ch, 'pusher:subscription_succeeded', 5000);
  assert.equal(state.authorizations, 1);
  const got = new Collector();
  ch.bind('news', got.push);

  await hushTrigger(channel, 'news', '{"n":1}', { epoch: 1 });
  assert.deepEqual(await got.waitFor(1, 5000), { n: 1 });

  // The backend rotates to epoch 2: the next event does not open with K1, so pusher-js asks the
  // auth endpoint again, gets K2 and delivers the event.
  state.epoch = 2;
  await hushTrigger(channel, 'news', '{"n":2}', { epoch: 2 });
  assert.deepEqual(await got.waitFor(2, 5000), { n: 2 });
  assert.equal(state.authorizations, 2);
  await hushTrigger(channel, 'news', '{"n":3}', { epoch: 2 });
  assert.deepEqual(await got.waitFor(3, 5000), { n: 3 });
  assert.equal(state.authorizations, 2, 'no re-authorization while the epoch is unchanged');
});

/** Sₑ = HKDF-SHA256(salt "hush sealed event key v1", IKM Kₑ, info ""): sealed events' own key. */
function sealedKey(channel, epoch) {
  return Buffer.from(crypto.hkdfSync('sha256', epochKey(channel, epoch), 'hush sealed event key v1', Buffer.alloc(0), 32));
}

test('a sealed event opens only under its own key: pusher-js re-authorizes once and drops it; the real name stays hidden', async () => {
  const channel = 'private-encrypted-sealed';
  const state = { epoch: 4, authorizations: 0 };
  const p = pusherClient(srv, MAIN_APP, { channelAuthorization: { customHandler: epochAuth(state) } });
  const ch = p.subscribe(channel);
  await once(ch, 'pusher:subscription_succeeded', 5000);
  assert.equal(state.authorizations, 1);
  const all = new Collector();
  ch.bind_global((event, data) => { if (!event.startsWith('pusher')) all.push({ event, data }); });
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const r = await c.subscribe(channel, { auth: privateAuth(MAIN_APP, c.socketId, channel) });
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);

  await hushTrigger(channel, 'real-name', 'canary-text', { epoch: 4, sealed: true });
  // The raw subscriber sees the envelope; node's own HKDF gives the sealed-event key. The channel
  // key (what pusher-js holds) does not open it: a relay cannot pass it off as an ordinary event.
  const m = await c.next('hush-sealed');
  const env = JSON.parse(m.data);
  assert.equal(env.epoch, 4);
  const nacl = require('tweetnacl');
  const box = [Buffer.from(env.ciphertext, 'base64'), Buffer.from(env.nonce, 'base64')];
  assert.equal(nacl.secretbox.open(...box, epochKey(channel, 4)), null, 'the channel key opened a sealed event');
  const opened = nacl.secretbox.open(...box, sealedKey(channel, 4));
  assert.ok(opened, 'node could not open the sealed event with its own sealed-event key');
  // Version 2 carries the sender's key and signature (about 145 bytes): the 512-byte bucket.
  assert.equal(opened.length, 512, 'padded to the 512-byte bucket');
  const data = JSON.parse(Buffer.from(opened).toString());
  assert.equal(data.v, 2);
  assert.equal(data.ev, 'real-name');
  assert.equal(data.data, 'canary-text');
  assert.equal(data.ch, channel);
  assert.equal(data.ep, 4);
  assert.equal(typeof data.seq, 'number');
  // The sender id is derived from the sender's key, and the signature verifies with node's own
  // Ed25519 over the message docs/E2EE-CHANNELS.md specifies (an independent implementation).
  const spk = Buffer.from(data.spk, 'base64url');
  const sid = crypto.createHash('sha256')
    .update(Buffer.concat([Buffer.from('hush/v1/sealed/sender-id\0'), spk]))
    .digest().subarray(0, 16).toString('base64url');
  assert.equal(data.sid, sid);
  const str16 = (s) => { const b = Buffer.from(s, 'utf8'); const l = Buffer.alloc(2); l.writeUInt16BE(b.length); return Buffer.concat([l, b]); };
  const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
  const body = Buffer.from(data.data, 'utf8');
  const signed = Buffer.concat([
    Buffer.from('hush/v1/sealed/signature\0'), str16(data.ch), u64(data.ep), str16(data.sid), u64(data.seq),
    str16(data.mid), u64(data.ts), str16(data.ev), u64(body.length), body,
  ]);
  const key = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: data.spk }, format: 'jwk' });
  assert.ok(crypto.verify(null, signed, key, Buffer.from(data.sig, 'base64url')), 'the sealed event signature does not verify');

  // pusher-js cannot open it: it asks the auth endpoint once more (its reaction to any
  // undecryptable event), still cannot, and drops it. Ordinary events keep arriving.
  for (let i = 0; i < 50 && state.authorizations < 2; i += 1) await new Promise((res) => setTimeout(res, 100));
  assert.equal(state.authorizations, 2);
  await hushTrigger(channel, 'after', '{"n":1}', { epoch: 4 });
  assert.deepEqual(await all.waitFor(1, 5000), { event: 'after', data: { n: 1 } });
  assert.equal(all.items.length, 1, 'pusher-js delivered the sealed event');
});
