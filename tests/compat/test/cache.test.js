'use strict';
// Cache channels (PROTOCOL.md §4.7, §5.1, §10, §12.6).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { privateAuth, presenceAuth } = require('../lib/auth');
const { sdk, pusherClient, channelAuthHandler, once, cleanupClients } = require('../lib/clients');

const SHORT = { id: '41', key: 'short-ttl-key', secret: 'short-ttl-secret', cache_ttl: 1 };
const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP }, short: SHORT } });
  api = sdk(srv, MAIN_APP, { encryptionMasterKeyBase64: MASTER_KEY });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

function authFor(app, c, channel) {
  if (channel.startsWith('presence-')) return presenceAuth(app, c.socketId, channel, { user_id: c.socketId });
  if (channel.startsWith('private-')) return { auth: privateAuth(app, c.socketId, channel) };
  return { auth: '' };
}

/** Subscribes a fresh raw socket; returns [client, index of subscription_succeeded in c.all]. */
async function sub(channel, app = MAIN_APP) {
  const c = await RawClient.open(srv.wsUrl(app.key));
  const r = await c.subscribe(channel, authFor(app, c, channel));
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  return [c, c.all.indexOf(r)];
}

test('empty cache channel: subscription_succeeded, then pusher:cache_miss with the channel', async () => {
  const [c, okIdx] = await sub('cache-empty');
  const miss = await c.next('pusher:cache_miss');
  assert.equal(miss.channel, 'cache-empty');
  assert.ok(miss.data === undefined || miss.data === '{}', `cache_miss data must be absent or "{}": ${miss.raw}`);
  assert.ok(c.all.indexOf(miss) > okIdx, 'cache_miss comes after subscription_succeeded');
});

test('last HTTP-triggered event is replayed right after subscription_succeeded', async () => {
  await api.trigger('cache-loc', 'location', { lat: 1 });
  await api.trigger('cache-loc', 'location', { lat: 2 });
  const [c, okIdx] = await sub('cache-loc');
  const m = await c.next('location');
  assert.equal(m.channel, 'cache-loc');
  assert.equal(m.data, '{"lat":2}');
  assert.ok(c.all.indexOf(m) > okIdx);
  assert.deepEqual(Object.keys(JSON.parse(m.raw)).sort(), ['channel', 'data', 'event']);
  await c.nothing('pusher:cache_miss', 200);
  await c.nothing('location', 10);
});

test('the cached event keeps its own event name (last event wins across names)', async () => {
  await api.trigger('cache-names', 'first', 'a');
  await api.trigger('cache-names', 'second', 'b');
  const [c] = await sub('cache-names');
  const m = await c.next('second');
  assert.equal(m.data, 'b');
  assert.equal(c.take('first'), undefined);
});

test('live subscribers get events normally; a late subscriber gets only the latest', async () => {
  const [early] = await sub('cache-live');
  await early.next('pusher:cache_miss');
  await api.trigger('cache-live', 'tick', '1');
  await api.trigger('cache-live', 'tick', '2');
  assert.equal((await early.next('tick')).data, '1');
  assert.equal((await early.next('tick')).data, '2');
  const [late] = await sub('cache-live');
  assert.equal((await late.next('tick')).data, '2');
  await late.nothing('tick', 200);
});

test('events published via batch_events are cached too', async () => {
  await api.triggerBatch([{ channel: 'cache-batch', name: 'b', data: 'from-batch' }]);
  const [c] = await sub('cache-batch');
  assert.equal((await c.next('b')).data, 'from-batch');
});

test('private-cache- replays to an authorized subscriber', async () => {
  await api.trigger('private-cache-p', 'p', 'private data');
  const [c] = await sub('private-cache-p');
  assert.equal((await c.next('p')).data, 'private data');
});

test('presence-cache- replays after the presence subscription_succeeded', async () => {
  await api.trigger('presence-cache-p', 'p', 'presence data');
  const [c] = await sub('presence-cache-p');
  assert.equal((await c.next('p')).data, 'presence data');
});

test('private-encrypted-cache- caches the ciphertext; pusher-js decrypts the replay', async () => {
  await api.trigger('private-encrypted-cache-e', 'enc', { secret: 42 });
  const [raw] = await sub('private-encrypted-cache-e');
  const m = await raw.next('enc');
  assert.deepEqual(Object.keys(JSON.parse(m.data)).sort(), ['ciphertext', 'nonce']);
  const p = pusherClient(srv, MAIN_APP, { channelAuthorization: { customHandler: channelAuthHandler(api) } });
  const ch = p.subscribe('private-encrypted-cache-e');
  const got = once(ch, 'enc');
  assert.deepEqual(await got, { secret: 42 });
});

test('non-cache channels never send cache_miss', async () => {
  const [c] = await sub('not-a-cache');
  await c.nothing('pusher:cache_miss', 300);
});

test('cache is per app', async () => {
  await api.trigger('cache-per-app', 'x', 'main app');
  const [c] = await sub('cache-per-app', SHORT);
  await c.next('pusher:cache_miss');
  assert.equal(c.take('x'), undefined);
});

test('cached event expires after cache_ttl → cache_miss', async () => {
  const shortApi = sdk(srv, SHORT);
  await shortApi.trigger('cache-ttl', 'x', 'soon gone');
  const [fresh] = await sub('cache-ttl', SHORT);
  assert.equal((await fresh.next('x')).data, 'soon gone');
  await sleep(1700);
  const [late] = await sub('cache-ttl', SHORT);
  await late.next('pusher:cache_miss');
  assert.equal(late.take('x'), undefined);
});

test('GET /channels/{cache-ch}?info=cache → cache {data, ttl}', async () => {
  await api.trigger('cache-info', 'loc', '{"lat":1}');
  const body = await (await api.get({ path: '/channels/cache-info', params: { info: 'cache' } })).json();
  assert.equal(typeof body.occupied, 'boolean');
  assert.equal(body.cache.data, '{"lat":1}');
  assert.equal(typeof body.cache.ttl, 'number');
  assert.ok(body.cache.ttl > 1700 && body.cache.ttl <= 1800, `ttl ${body.cache.ttl}`);
});

test('GET /channels/{empty cache-ch}?info=cache → cache null', async () => {
  const body = await (await api.get({ path: '/channels/cache-nothing', params: { info: 'cache' } })).json();
  assert.equal(body.cache, null);
});

test('pusher-js: pusher:cache_miss can be bound on the channel; cached events reach bindings', async () => {
  const p = pusherClient(srv, MAIN_APP);
  const miss = once(p.subscribe('cache-pjs-miss'), 'pusher:cache_miss');
  await miss;
  await api.trigger('cache-pjs-hit', 'hit', { v: 1 });
  const hit = once(p.subscribe('cache-pjs-hit'), 'hit');
  assert.deepEqual(await hit, { v: 1 });
});
