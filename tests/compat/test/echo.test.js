'use strict';
// Laravel Echo 2.5.0 (pusher broadcaster, pusher-js) against hush.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { sleep } = require('../lib/ws-client');
const { sdk, echoClient, loadEcho, waitState, cleanupClients, Collector } = require('../lib/clients');

const APP = { ...MAIN_APP, client_events: true };
const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');

let srv;
let api;
before(async () => {
  await loadEcho();
  srv = await startServer({ apps: { main: APP } });
  api = sdk(srv, APP, { encryptionMasterKeyBase64: MASTER_KEY });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

/**
 * An Echo client whose custom authorizer signs with the SDK (what a Laravel /broadcasting/auth
 * endpoint returns). `user` is the presence user ({id, name}); `deny` names channels to fail.
 */
function echo({ user, breakSignature = false } = {}) {
  return echoClient(srv, APP, {
    authorizer: (channel) => ({
      authorize: (socketId, callback) => {
        try {
          const data = channel.name.startsWith('presence-') && user ? { user_id: user.id, user_info: user } : undefined;
          const res = api.authorizeChannel(socketId, channel.name, data);
          if (breakSignature) res.auth = `${APP.key}:${'0'.repeat(64)}`;
          callback(null, res);
        } catch (e) {
          callback(e, null);
        }
      },
    }),
  });
}

function subscribedPromise(channel, timeout = 3000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('Echo subscribed() not called')), timeout);
    channel.subscribed(() => { clearTimeout(t); resolve(); });
  });
}

test('Echo connects: socketId() and connectionStatus()', async () => {
  const e = echo();
  await waitState(e.connector.pusher, 'connected');
  assert.match(e.socketId(), /^[0-9]+\.[0-9]+$/);
  assert.equal(e.connectionStatus(), 'connected');
});

test('Echo public channel: listen(".Event") receives an SDK trigger', async () => {
  const e = echo();
  const got = new Collector();
  const ch = e.channel('orders').listen('.OrderShipped', got.push);
  await subscribedPromise(ch);
  await api.trigger('orders', 'OrderShipped', { id: 7 });
  assert.deepEqual(await got.waitFor(1), { id: 7 });
});

test('Echo namespaced listen("OrderShipped") receives App\\Events\\OrderShipped', async () => {
  const e = echo();
  const got = new Collector();
  const ch = e.channel('orders-ns').listen('OrderShipped', got.push);
  await subscribedPromise(ch);
  await api.trigger('orders-ns', 'App\\Events\\OrderShipped', { id: 8 });
  assert.deepEqual(await got.waitFor(1), { id: 8 });
});

test('Echo private().listen() with a custom authorizer', async () => {
  const e = echo();
  const got = new Collector();
  const ch = e.private('orders.1').listen('.status', got.push);
  await subscribedPromise(ch);
  await api.trigger('private-orders.1', 'status', { s: 'shipped' });
  assert.deepEqual(await got.waitFor(1), { s: 'shipped' });
});

test('Echo private().error() receives the server refusal of a bad signature', async () => {
  const e = echo({ breakSignature: true });
  const errors = new Collector();
  e.private('locked').error(errors.push);
  const err = await errors.waitFor(1);
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 401);
});

test('Echo join(): here(), joining(), leaving()', async () => {
  const alice = echo({ user: { id: 'alice', name: 'Alice' } });
  const here = new Collector();
  const joining = new Collector();
  const leaving = new Collector();
  alice.join('room.1').here(here.push).joining(joining.push).leaving(leaving.push);
  assert.deepEqual(await here.waitFor(1), [{ id: 'alice', name: 'Alice' }]);

  const bob = echo({ user: { id: 'bob', name: 'Bob' } });
  const bobHere = new Collector();
  bob.join('room.1').here(bobHere.push);
  const users = await bobHere.waitFor(1);
  assert.deepEqual(users.map((u) => u.id).sort(), ['alice', 'bob']);
  assert.deepEqual(await joining.waitFor(1), { id: 'bob', name: 'Bob' });

  bob.leave('room.1');
  assert.deepEqual(await leaving.waitFor(1), { id: 'bob', name: 'Bob' });
});

test('Echo whisper / listenForWhisper on a private channel (client events)', async () => {
  const a = echo();
  const b = echo();
  const heard = new Collector();
  const chA = a.private('chat.1');
  const chB = b.private('chat.1').listenForWhisper('typing', heard.push);
  await Promise.all([subscribedPromise(chA), subscribedPromise(chB)]);
  const self = new Collector();
  chA.listenForWhisper('typing', self.push);
  chA.whisper('typing', { name: 'A' });
  assert.deepEqual(await heard.waitFor(1), { name: 'A' });
  await sleep(200);
  assert.equal(self.items.length, 0, 'whisper is not echoed to the sender');
});

test('Echo whisper on a presence channel carries the sender user id in metadata', async () => {
  const a = echo({ user: { id: 'wa', name: 'WA' } });
  const b = echo({ user: { id: 'wb', name: 'WB' } });
  const heard = new Collector();
  const chA = a.join('presence.whisper');
  const chB = b.join('presence.whisper').listenForWhisper('ping', heard.push);
  await Promise.all([subscribedPromise(chA), subscribedPromise(chB)]);
  chA.whisper('ping', { n: 1 });
  await heard.waitFor(1);
  assert.deepEqual(heard.calls[0][0], { n: 1 });
  assert.equal(heard.calls[0][1].user_id, 'wa');
});

test('Echo encryptedPrivate().listen() receives plaintext', async () => {
  const e = echo();
  const got = new Collector();
  const ch = e.encryptedPrivate('vault').listen('.opened', got.push);
  await subscribedPromise(ch);
  await api.trigger('private-encrypted-vault', 'opened', { by: 'me' });
  assert.deepEqual(await got.waitFor(1), { by: 'me' });
});

test('Echo leave() unsubscribes: no more events', async () => {
  const e = echo();
  const got = new Collector();
  const ch = e.channel('leaving-soon').listen('.x', got.push);
  await subscribedPromise(ch);
  e.leave('leaving-soon');
  await sleep(200);
  await api.trigger('leaving-soon', 'x', {});
  await sleep(300);
  assert.equal(got.items.length, 0);
});

test('Echo listenToAll() sees events by name', async () => {
  const e = echo();
  const seen = new Collector();
  const ch = e.channel('all-events').listenToAll((name, data) => seen.push({ name, data }));
  await subscribedPromise(ch);
  await api.trigger('all-events', 'Anything', { a: 1 });
  assert.deepEqual(await seen.waitFor(1), { name: '.Anything', data: { a: 1 } });
});

test('Echo private().notification() receives BroadcastNotificationCreated', async () => {
  const e = echo();
  const got = new Collector();
  const ch = e.private('App.Models.User.1').notification(got.push);
  await subscribedPromise(ch);
  await api.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', { id: 'n1', type: 'invoice' });
  assert.deepEqual(await got.waitFor(1), { id: 'n1', type: 'invoice' });
});
