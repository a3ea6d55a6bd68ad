'use strict';
// End-to-end encrypted channels (PROTOCOL.md §11, §17 c/d): hush relays ciphertext untouched,
// pusher-js decrypts with the shared secret from the app's auth endpoint.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { apiRequest, privateAuth } = require('../lib/auth');
const { sdk, pusherClient, channelAuthHandler, once, cleanupClients, Collector } = require('../lib/clients');

const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');
const LENIENT = { id: '31', key: 'lenient-enc-key', secret: 'lenient-enc-secret', require_encrypted_payload: false };
const VECTOR_DATA = '{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}';

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP }, lenient: LENIENT } });
  api = sdk(srv, MAIN_APP, { encryptionMasterKeyBase64: MASTER_KEY });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

function encClient() {
  return pusherClient(srv, MAIN_APP, { channelAuthorization: { customHandler: channelAuthHandler(api) } });
}

async function rawSubscriber(channel, app = MAIN_APP) {
  const c = await RawClient.open(srv.wsUrl(app.key));
  const r = await c.subscribe(channel, { auth: privateAuth(app, c.socketId, channel) });
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  return c;
}

test('known-answer vector (c): shared secret and auth response from the SDK', () => {
  const r = api.authorizeChannel('1234.1234', 'private-encrypted-foo');
  assert.deepEqual(r, {
    auth: '278d425bdf160c739803:e85caab4331194145d44feae15aea9539ea50631afacbc593a9555ceadc42357',
    shared_secret: '3x0KbqI7rIgm1LH1vj0MbmQu3a1H1t0DYjzwM8+rKlc=',
  });
});

test('pusher-js receives the plaintext of an SDK trigger on private-encrypted-*', async () => {
  const p = encClient();
  const ch = p.subscribe('private-encrypted-news');
  await once(ch, 'pusher:subscription_succeeded');
  const got = once(ch, 'secret');
  await api.trigger('private-encrypted-news', 'secret', { message: 'hello', n: [1, 2] });
  assert.deepEqual(await got, { message: 'hello', n: [1, 2] });
});

test('a raw subscriber sees only {nonce, ciphertext} in data (string), never the plaintext', async () => {
  const c = await rawSubscriber('private-encrypted-raw');
  await api.trigger('private-encrypted-raw', 'secret', { message: 'top secret text' });
  const m = await c.next('secret');
  assert.equal(typeof m.data, 'string');
  assert.ok(!m.raw.includes('top secret text'));
  const d = JSON.parse(m.data);
  assert.deepEqual(Object.keys(d).sort(), ['ciphertext', 'nonce']);
  assert.equal(Buffer.from(d.nonce, 'base64').length, 24);
  assert.ok(Buffer.from(d.ciphertext, 'base64').length >= 16);
});

test('the known-answer ciphertext (vector d) is relayed byte-for-byte', async () => {
  const c = await rawSubscriber('private-encrypted-foo');
  const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/events', {
    body: { name: 'my-event', channels: ['private-encrypted-foo'], data: VECTOR_DATA },
  });
  assert.equal(res.status, 200, res.text);
  const m = await c.next('my-event');
  assert.equal(m.data, VECTOR_DATA);
  assert.deepEqual(Object.keys(JSON.parse(m.raw)).sort(), ['channel', 'data', 'event']);
});

test('pusher-js decrypts the known-answer vector (d) on private-encrypted-foo', async () => {
  const p = encClient();
  const ch = p.subscribe('private-encrypted-foo');
  await once(ch, 'pusher:subscription_succeeded');
  const got = once(ch, 'my-event');
  const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/events', {
    body: { name: 'my-event', channels: ['private-encrypted-foo'], data: VECTOR_DATA },
  });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(await got, { message: 'hello' });
});

test('SDK triggerBatch with an encrypted item: pusher-js gets plaintext', async () => {
  const p = encClient();
  const ch = p.subscribe('private-encrypted-batch');
  await once(ch, 'pusher:subscription_succeeded');
  const got = once(ch, 'b');
  const res = await api.triggerBatch([{ channel: 'private-encrypted-batch', name: 'b', data: { k: 'v' } }]);
  assert.equal(res.status, 200);
  assert.deepEqual(await got, { k: 'v' });
});

test('the batch vector from §17 e (encrypted item) is accepted and relayed', async () => {
  const c = await rawSubscriber('private-encrypted-foo');
  const body = `{"batch":[{"channel":"private-encrypted-foo","name":"my-event","data":${JSON.stringify(VECTOR_DATA)}}]}`;
  const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/batch_events', { body });
  assert.equal(res.status, 200, res.text);
  assert.equal((await c.next('my-event')).data, VECTOR_DATA);
});

for (const [label, data] of [
  ['plaintext JSON', '{"message":"hello"}'],
  ['plain string', 'hello'],
  ['nonce of 23 bytes', JSON.stringify({ nonce: Buffer.alloc(23).toString('base64'), ciphertext: Buffer.alloc(32).toString('base64') })],
  ['nonce not base64', JSON.stringify({ nonce: '!!!!', ciphertext: Buffer.alloc(32).toString('base64') })],
  ['ciphertext shorter than 16 bytes', JSON.stringify({ nonce: Buffer.alloc(24).toString('base64'), ciphertext: Buffer.alloc(8).toString('base64') })],
  ['missing ciphertext', JSON.stringify({ nonce: Buffer.alloc(24).toString('base64') })],
  ['extra member', JSON.stringify({ nonce: Buffer.alloc(24).toString('base64'), ciphertext: Buffer.alloc(32).toString('base64'), message: 'leak' })],
  ['numeric members', JSON.stringify({ nonce: 1, ciphertext: 2 })],
]) {
  test(`publish to private-encrypted-* with ${label} → 400 (require_encrypted_payload)`, async () => {
    const c = await rawSubscriber('private-encrypted-strict');
    const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/events', {
      body: { name: 'x', channels: ['private-encrypted-strict'], data },
    });
    assert.equal(res.status, 400, res.text);
    await c.nothing('x', 200);
  });
}

test('encrypted-payload check also applies to batch items and private-encrypted-cache-*', async () => {
  let res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/batch_events', {
    body: { batch: [{ name: 'x', channel: 'private-encrypted-b', data: 'plaintext' }] },
  });
  assert.equal(res.status, 400, res.text);
  res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/events', {
    body: { name: 'x', channels: ['private-encrypted-cache-b'], data: 'plaintext' },
  });
  assert.equal(res.status, 400, res.text);
});

test('with require_encrypted_payload=false any data is relayed as given', async () => {
  const c = await rawSubscriber('private-encrypted-lenient', LENIENT);
  const res = await apiRequest(srv, LENIENT, 'POST', `/apps/${LENIENT.id}/events`, {
    body: { name: 'x', channels: ['private-encrypted-lenient'], data: 'not encrypted' },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal((await c.next('x')).data, 'not encrypted');
});

test('multi-channel trigger with an encrypted channel → 400 (the SDK refuses client-side too)', async () => {
  const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/events', {
    body: { name: 'x', channels: ['private-encrypted-a', 'private-encrypted-b'], data: VECTOR_DATA },
  });
  assert.equal(res.status, 400, res.text);
  assert.throws(() => api.trigger(['news', 'private-encrypted-a'], 'x', {}));
});

test('client events on private-encrypted-* are refused (pusher:error), not relayed', async () => {
  const a = await rawSubscriber('private-encrypted-ce');
  const b = await rawSubscriber('private-encrypted-ce');
  a.send({ event: 'client-x', channel: 'private-encrypted-ce', data: JSON.parse(VECTOR_DATA) });
  const err = await a.next('pusher:error');
  assert.equal(err.data.code, null);
  await b.nothing('client-x', 300);
});

test('socket_id exclusion on encrypted channels', async () => {
  const p1 = encClient();
  const p2 = encClient();
  const c1 = p1.subscribe('private-encrypted-excl');
  const c2 = p2.subscribe('private-encrypted-excl');
  await Promise.all([once(c1, 'pusher:subscription_succeeded'), once(c2, 'pusher:subscription_succeeded')]);
  const got1 = new Collector();
  c1.bind('e', got1.push);
  const got2 = once(c2, 'e');
  await api.trigger('private-encrypted-excl', 'e', { v: 1 }, { socket_id: p1.connection.socket_id });
  assert.deepEqual(await got2, { v: 1 });
  await sleep(300);
  assert.equal(got1.items.length, 0);
});

test('pusher-js with a wrong shared secret cannot read the event (ciphertext not plaintext on the wire)', async () => {
  const wrong = Buffer.alloc(32, 7).toString('base64');
  const p = pusherClient(srv, MAIN_APP, {
    channelAuthorization: { customHandler: channelAuthHandler(api, { tamper: (r) => ({ ...r, shared_secret: wrong }) }) },
  });
  const ch = p.subscribe('private-encrypted-wrongkey');
  await once(ch, 'pusher:subscription_succeeded');
  const got = new Collector();
  ch.bind('e', got.push);
  await api.trigger('private-encrypted-wrongkey', 'e', { v: 'hidden' });
  await sleep(600);
  assert.equal(got.items.length, 0, 'undecryptable event must not be emitted');
});
