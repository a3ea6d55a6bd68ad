'use strict';
// Client events (PROTOCOL.md §3.4, §7, §10 "client events are not cached", §11 rule 3).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { privateAuth, presenceAuth } = require('../lib/auth');
const {
  sdk, pusherClient, channelAuthHandler, once, onceWithMeta, cleanupClients,
} = require('../lib/clients');

const ON = { ...MAIN_APP, client_events: true };
const OFF = { id: '12', key: 'no-client-events-key', secret: 'no-client-events-secret', client_events: false };
const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: ON, off: OFF } });
  api = sdk(srv, ON, { encryptionMasterKeyBase64: MASTER_KEY });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

/** Opens n sockets on `app` all subscribed to `channel` (private or presence). */
async function pair(channel, n = 2, app = ON) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = await RawClient.open(srv.wsUrl(app.key));
    let opts;
    if (channel.startsWith('presence-')) opts = presenceAuth(app, c.socketId, channel, { user_id: `user-${i}`, user_info: { i } });
    else if (channel.startsWith('private-')) opts = { auth: privateAuth(app, c.socketId, channel) };
    else opts = { auth: '' };
    const r = await c.subscribe(channel, opts);
    assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
    out.push(c);
  }
  return out;
}

async function expectClientEventError(sender, receivers, frame) {
  sender.send(frame);
  const err = await sender.next('pusher:error');
  assert.equal(typeof err.data, 'object', err.raw);
  assert.equal(err.data.code, null, err.raw);
  assert.equal(typeof err.data.message, 'string');
  for (const r of receivers) await r.nothing(frame.event, 250);
  await sender.ping();
}

test('private channel: relayed to other subscribers, never echoed to the sender', async () => {
  const [a, b, c] = await pair('private-chat', 3);
  a.send({ event: 'client-typing', channel: 'private-chat', data: { x: 1 } });
  for (const r of [b, c]) {
    const ev = await r.next('client-typing');
    assert.equal(ev.channel, 'private-chat');
    assert.deepEqual(ev.data, { x: 1 }, 'object data stays an object');
    assert.equal(ev.user_id, undefined, 'no user_id on private channels');
  }
  await a.nothing('client-typing', 300);
});

test('data is forwarded as sent: string stays string, number/array/null pass through', async () => {
  const [a, b] = await pair('private-shapes');
  const values = ['{"a":1}', 'plain', 42, [1, 'two'], { nested: { deep: [true] } }, '', 0, false];
  for (const v of values) a.send({ event: 'client-shape', channel: 'private-shapes', data: v });
  for (const v of values) {
    const ev = await b.next('client-shape');
    assert.deepEqual(ev.data, v);
  }
});

test('data null is forwarded as null', async () => {
  const [a, b] = await pair('private-null');
  a.send({ event: 'client-null', channel: 'private-null', data: null });
  const ev = await b.next('client-null');
  assert.ok('data' in JSON.parse(ev.raw), `data member dropped: ${ev.raw}`);
  assert.equal(ev.data, null);
});

test('the relayed frame is rebuilt: client-supplied user_id and extra fields are dropped (private)', async () => {
  const [a, b] = await pair('private-forge');
  a.send({ event: 'client-forge', channel: 'private-forge', data: {}, user_id: 'admin', socket_id: '1.1', extra: 'x' });
  const ev = await b.next('client-forge');
  assert.deepEqual(Object.keys(JSON.parse(ev.raw)).sort(), ['channel', 'data', 'event']);
});

test('presence channel: relayed with the sender\'s user_id; a forged user_id is overwritten', async () => {
  const [a, b] = await pair('presence-room');
  a.send({ event: 'client-hi', channel: 'presence-room', data: { t: 1 } });
  const ev = await b.next('client-hi');
  assert.equal(ev.user_id, 'user-0');
  a.send({ event: 'client-hi', channel: 'presence-room', data: { t: 2 }, user_id: 'user-1' });
  const forged = await b.next('client-hi');
  assert.equal(forged.user_id, 'user-0', `forged user_id passed through: ${forged.raw}`);
  assert.deepEqual(Object.keys(JSON.parse(forged.raw)).sort(), ['channel', 'data', 'event', 'user_id']);
  await a.nothing('client-hi', 200);
});

test('presence channel with numeric user_id: relayed user_id is a string', async () => {
  const a = await RawClient.open(srv.wsUrl(ON.key));
  const b = await RawClient.open(srv.wsUrl(ON.key));
  await a.subscribe('presence-num-ce', presenceAuth(ON, a.socketId, 'presence-num-ce', { user_id: 77 }));
  await b.subscribe('presence-num-ce', presenceAuth(ON, b.socketId, 'presence-num-ce', { user_id: 78 }));
  a.send({ event: 'client-n', channel: 'presence-num-ce', data: {} });
  const ev = await b.next('client-n');
  assert.strictEqual(ev.user_id, '77');
});

test('private-cache- and presence-cache- allow client events', async () => {
  const [a, b] = await pair('private-cache-ce');
  a.send({ event: 'client-c', channel: 'private-cache-ce', data: { k: 1 } });
  assert.deepEqual((await b.next('client-c')).data, { k: 1 });
  const [c, d] = await pair('presence-cache-ce');
  c.send({ event: 'client-c', channel: 'presence-cache-ce', data: { k: 2 } });
  const ev = await d.next('client-c');
  assert.equal(ev.user_id, 'user-0');
});

test('client events are not cached on cache channels', async () => {
  const [a, b] = await pair('private-cache-nocache');
  a.send({ event: 'client-c', channel: 'private-cache-nocache', data: { k: 1 } });
  await b.next('client-c');
  const late = await RawClient.open(srv.wsUrl(ON.key));
  await late.subscribe('private-cache-nocache', { auth: privateAuth(ON, late.socketId, 'private-cache-nocache') });
  await late.next('pusher:cache_miss', { channel: 'private-cache-nocache' });
  assert.equal(late.take('client-c'), undefined);
});

test('public channel → pusher:error, not relayed', async () => {
  const [a, b] = await pair('public-ce');
  await expectClientEventError(a, [b], { event: 'client-x', channel: 'public-ce', data: {} });
});

test('cache- (public cache) channel → pusher:error, not relayed', async () => {
  const [a, b] = await pair('cache-ce');
  // drain cache_miss frames
  await a.next('pusher:cache_miss');
  await b.next('pusher:cache_miss');
  await expectClientEventError(a, [b], { event: 'client-x', channel: 'cache-ce', data: {} });
});

test('private-encrypted- channel → pusher:error, not relayed', async () => {
  const a = await RawClient.open(srv.wsUrl(ON.key));
  const b = await RawClient.open(srv.wsUrl(ON.key));
  for (const c of [a, b]) {
    const r = await c.subscribe('private-encrypted-ce', { auth: api.authorizeChannel(c.socketId, 'private-encrypted-ce').auth });
    assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  }
  await expectClientEventError(a, [b], { event: 'client-x', channel: 'private-encrypted-ce', data: { nonce: 'AAAA', ciphertext: 'BBBB' } });
});

test('sender not subscribed to the channel → pusher:error, not relayed', async () => {
  const [b] = await pair('private-notsub', 1);
  const outsider = await RawClient.open(srv.wsUrl(ON.key));
  await expectClientEventError(outsider, [b], { event: 'client-x', channel: 'private-notsub', data: {} });
});

test('event without the client- prefix is not relayed', async () => {
  const [a, b] = await pair('private-prefix');
  a.send({ event: 'typing', channel: 'private-prefix', data: {} });
  await b.nothing('typing', 300);
  await a.ping();
});

test('client event name longer than 200 characters → pusher:error', async () => {
  const [a, b] = await pair('private-longname');
  await expectClientEventError(a, [b], { event: `client-${'x'.repeat(200)}`, channel: 'private-longname', data: {} });
});

test('client event data over 10 KiB → pusher:error, not relayed; 10 000 bytes is fine', async () => {
  const [a, b] = await pair('private-size');
  a.send({ event: 'client-ok', channel: 'private-size', data: 'x'.repeat(10000) });
  await b.next('client-ok');
  await expectClientEventError(a, [b], { event: 'client-big', channel: 'private-size', data: 'x'.repeat(10300) });
});

test('client event to an invalid channel name → pusher:error', async () => {
  const [a] = await pair('private-valid-ce', 1);
  a.send({ event: 'client-x', channel: 'private-a:b', data: {} });
  const err = await a.next('pusher:error');
  assert.equal(err.data.code, null);
});

test('app with client events disabled → pusher:error, not relayed', async () => {
  const [a, b] = await pair('private-off', 2, OFF);
  await expectClientEventError(a, [b], { event: 'client-x', channel: 'private-off', data: {} });
});

test('rate limit: more than 10 client events per second → pusher:error 4301, extras dropped, connection kept', async () => {
  const [a, b] = await pair('private-rate');
  for (let i = 0; i < 20; i++) a.send({ event: 'client-burst', channel: 'private-rate', data: { i } });
  const err = await a.next('pusher:error');
  assert.equal(err.data.code, 4301, err.raw);
  await sleep(500);
  let received = 0;
  while (b.take('client-burst')) received++;
  assert.ok(received >= 1 && received <= 10, `received ${received} of 20`);
  assert.ok(a.isOpen);
  // After the window passes, client events flow again.
  await sleep(1100);
  a.send({ event: 'client-after', channel: 'private-rate', data: {} });
  await b.next('client-after');
});

test('10 client events spread over more than a second are all delivered', async () => {
  const [a, b] = await pair('private-steady');
  for (let i = 0; i < 12; i++) {
    a.send({ event: 'client-steady', channel: 'private-steady', data: { i } });
    await sleep(150);
  }
  for (let i = 0; i < 12; i++) assert.deepEqual((await b.next('client-steady')).data, { i });
  assert.equal(a.take('pusher:error'), undefined);
});

test('pusher-js: channel.trigger between two clients on a private channel', async () => {
  const mk = () => pusherClient(srv, ON, { channelAuthorization: { customHandler: channelAuthHandler(api) } });
  const p1 = mk();
  const p2 = mk();
  const c1 = p1.subscribe('private-pjs-ce');
  const c2 = p2.subscribe('private-pjs-ce');
  await Promise.all([once(c1, 'pusher:subscription_succeeded'), once(c2, 'pusher:subscription_succeeded')]);
  const got = once(c2, 'client-msg');
  let echoed = false;
  c1.bind('client-msg', () => { echoed = true; });
  assert.equal(c1.trigger('client-msg', { text: 'hi' }), true);
  assert.deepEqual(await got, { text: 'hi' });
  await sleep(200);
  assert.equal(echoed, false);
});

test('pusher-js: presence client event metadata carries the sender user_id', async () => {
  const mk = (id) => pusherClient(srv, ON, {
    channelAuthorization: { customHandler: channelAuthHandler(api, { presence: () => ({ user_id: id }) }) },
  });
  const p1 = mk('sender');
  const p2 = mk('receiver');
  const c1 = p1.subscribe('presence-pjs-ce');
  const c2 = p2.subscribe('presence-pjs-ce');
  await Promise.all([once(c1, 'pusher:subscription_succeeded'), once(c2, 'pusher:subscription_succeeded')]);
  const got = onceWithMeta(c2, 'client-wave');
  c1.trigger('client-wave', { w: 1 });
  const [data, meta] = await got;
  assert.deepEqual(data, { w: 1 });
  assert.equal(meta.user_id, 'sender');
});

test('pusher-js: the client-events-disabled error reaches connection "error" binding', async () => {
  const offApi = sdk(srv, OFF);
  const p = pusherClient(srv, OFF, { channelAuthorization: { customHandler: channelAuthHandler(offApi) } });
  const ch = p.subscribe('private-pjs-off');
  await once(ch, 'pusher:subscription_succeeded');
  const errP = once(p.connection, 'error');
  ch.trigger('client-x', {});
  const err = await errP;
  assert.equal(err.type, 'PusherError');
  assert.equal(err.data.code, null);
});
