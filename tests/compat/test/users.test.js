'use strict';
// User sign-in, server-to-user, terminate connections, watchlist, authorized connections
// (PROTOCOL.md §3.3, §4.6, §4.8, §9, §12.8, §17 b2).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, dataOf, sleep } = require('../lib/ws-client');
const { userAuth, authFor, presenceAuth, privateAuth, apiRequest } = require('../lib/auth');
const {
  sdk, pusherClient, userAuthHandler, channelAuthHandler, once, waitState, withTimeout, cleanupClients, Collector,
} = require('../lib/clients');

const STRICT = {
  id: '21', key: 'strict-users-key', secret: 'strict-users-secret',
  user_authentication: true, user_authentication_timeout: 1,
};

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP }, strict: STRICT } });
  api = sdk(srv, MAIN_APP);
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

const open = (app = MAIN_APP) => RawClient.open(srv.wsUrl(app.key));

/** Opens a socket and signs in as `user` (object or exact user_data string). */
async function signedIn(user, app = MAIN_APP) {
  const c = await open(app);
  c.send({ event: 'pusher:signin', data: userAuth(app, c.socketId, user) });
  const ok = await c.next('pusher:signin_success');
  return [c, ok];
}

/** Folds watchlist_events frames into {online:Set, offline:Set} (entries with no ids may be omitted). */
function watchlistOf(msg) {
  assert.equal(msg.event, 'pusher_internal:watchlist_events');
  assert.equal(msg.channel, undefined, 'watchlist_events has no channel');
  assert.equal(typeof msg.data, 'object', `watchlist_events data is an object (§4 table): ${msg.raw}`);
  const d = dataOf(msg);
  assert.ok(Array.isArray(d.events), msg.raw);
  const out = { online: new Set(), offline: new Set() };
  for (const e of d.events) {
    assert.ok(e.name === 'online' || e.name === 'offline', msg.raw);
    assert.ok(Array.isArray(e.user_ids), msg.raw);
    for (const id of e.user_ids) out[e.name].add(id);
  }
  return out;
}

test('known-answer vector (b2): sign-in signature', () => {
  assert.equal(
    userAuth(MAIN_APP, '1234.1234', '{"id":"12345"}').auth,
    '278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba',
  );
  assert.deepEqual(api.authenticateUser('1234.1234', { id: '12345' }), {
    auth: '278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba',
    user_data: '{"id":"12345"}',
  });
});

test('signin → pusher:signin_success with data {user_data: <exact string sent>} (object, no auth)', async () => {
  const ud = '{"id":"12345", "user_info": {"name":"Alice"} }';
  const [, ok] = await signedIn(ud);
  assert.equal(typeof ok.data, 'object', `signin_success data must be an object: ${ok.raw}`);
  assert.deepEqual(ok.data, { user_data: ud });
  assert.equal(ok.channel, undefined);
});

test('signin with the SDK-produced auth works', async () => {
  const c = await open();
  c.send({ event: 'pusher:signin', data: api.authenticateUser(c.socketId, { id: 'sdk-user', user_info: { a: 1 } }) });
  const ok = await c.next('pusher:signin_success');
  assert.equal(ok.data.user_data, '{"id":"sdk-user","user_info":{"a":1}}');
});

for (const [label, mk] of [
  ['bad signature', (sid) => ({ auth: `${MAIN_APP.key}:${'f'.repeat(64)}`, user_data: '{"id":"x"}' })],
  ['channel-style signature', (sid) => ({ auth: authFor(MAIN_APP, `${sid}:{"id":"x"}`), user_data: '{"id":"x"}' })],
  ['signature for another socket', () => userAuth(MAIN_APP, '1.2', '{"id":"x"}')],
  ['missing auth', () => ({ user_data: '{"id":"x"}' })],
  ['missing user_data', (sid) => ({ auth: userAuth(MAIN_APP, sid, '{"id":"x"}').auth })],
  ['user_data not JSON (signed)', (sid) => userAuth(MAIN_APP, sid, 'not json')],
  ['user_data without id (signed)', (sid) => userAuth(MAIN_APP, sid, '{"user_info":{}}')],
  ['empty id (signed)', (sid) => userAuth(MAIN_APP, sid, '{"id":""}')],
  ['numeric id (signed)', (sid) => userAuth(MAIN_APP, sid, '{"id":12345}')],
  ['id with a space (signed)', (sid) => userAuth(MAIN_APP, sid, '{"id":"a b"}')],
  ['id with a colon (signed)', (sid) => userAuth(MAIN_APP, sid, '{"id":"a:b"}')],
  ['id with # (signed)', (sid) => userAuth(MAIN_APP, sid, '{"id":"a#b"}')],
  ['trailing bytes after user_data (signed)', (sid) => userAuth(MAIN_APP, sid, '{"id":"x"} x')],
  ['user_data is an array (signed)', (sid) => userAuth(MAIN_APP, sid, '[{"id":"x"}]')],
]) {
  test(`signin with ${label} → pusher:error, connection kept (app without authorized connections)`, async () => {
    const c = await open();
    c.send({ event: 'pusher:signin', data: mk(c.socketId) });
    const err = await c.next('pusher:error');
    assert.equal(typeof err.data, 'object', err.raw);
    assert.ok(err.data.code === null || typeof err.data.code === 'number', err.raw);
    assert.notEqual(err.data.code, 4009, 'must not use the closing code when the app does not require sign-in');
    assert.equal(c.take('pusher:signin_success'), undefined);
    await c.ping();
    assert.ok(c.isOpen);
  });
}

test('a socket signed in as one user cannot sign in as another', async () => {
  const [c] = await signedIn({ id: 'first' });
  c.send({ event: 'pusher:signin', data: userAuth(MAIN_APP, c.socketId, { id: 'second' }) });
  await c.next('pusher:error');
  assert.equal(c.take('pusher:signin_success'), undefined);
  await api.sendToUser('second', 'to-second', { x: 1 });
  await api.sendToUser('first', 'to-first', { x: 1 });
  await c.next('to-first');
  assert.equal(c.take('to-second'), undefined);
});

test('sendToUser reaches every socket signed in as that user, nobody else, without a subscription', async () => {
  const [u1] = await signedIn({ id: 'u' });
  const [u2] = await signedIn({ id: 'u' });
  const [v] = await signedIn({ id: 'v' });
  const anon = await open();
  // Even a socket that joined a presence channel as "u" but never signed in gets nothing.
  const presenceOnly = await open();
  await presenceOnly.subscribe('presence-u', presenceAuth(MAIN_APP, presenceOnly.socketId, 'presence-u', { user_id: 'u' }));
  await api.sendToUser('u', 'private-note', { a: 1 });
  for (const c of [u1, u2]) {
    const ev = await c.next('private-note');
    assert.equal(ev.channel, '#server-to-user-u');
    assert.equal(ev.data, '{"a":1}');
  }
  for (const c of [v, anon, presenceOnly]) await c.nothing('private-note', 250);
});

test('server-to-user honours socket_id exclusion', async () => {
  const [u1] = await signedIn({ id: 'ex' });
  const [u2] = await signedIn({ id: 'ex' });
  // The SDK's trigger() refuses '#' names client-side, so send the request raw.
  const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/events', {
    body: { name: 'note', channels: ['#server-to-user-ex'], data: 'hello', socket_id: u1.socketId },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal((await u2.next('note')).data, 'hello');
  await u1.nothing('note', 300);
});

test('#server-to-user-{own id} subscription succeeds; delivery is not duplicated', async () => {
  const [c] = await signedIn({ id: 'own' });
  const r = await c.subscribe('#server-to-user-own', { auth: '' });
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  await api.sendToUser('own', 'once', {});
  await c.next('once');
  await c.nothing('once', 300);
});

test('#server-to-user-{other id} subscription is refused, and nothing leaks to it', async () => {
  const [c] = await signedIn({ id: 'me' });
  const r = await c.subscribe('#server-to-user-victim', { auth: '' });
  assert.equal(r.event, 'pusher:subscription_error', r.raw);
  await api.sendToUser('victim', 'secret', {});
  await c.nothing('secret', 300);
});

test('terminateUserConnections → pusher:error 4009 + close 4009 on every signed-in socket of that user only', async () => {
  const [u1] = await signedIn({ id: 'bye' });
  const [u2] = await signedIn({ id: 'bye' });
  const [other] = await signedIn({ id: 'stay' });
  const presenceOnly = await open();
  await presenceOnly.subscribe('presence-bye', presenceAuth(MAIN_APP, presenceOnly.socketId, 'presence-bye', { user_id: 'bye' }));
  const res = await api.terminateUserConnections('bye');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  for (const c of [u1, u2]) {
    const err = await c.next('pusher:error', { allowClosed: true });
    assert.equal(err.data.code, 4009, err.raw);
    assert.equal((await c.waitClose()).code, 4009);
  }
  await other.ping();
  await presenceOnly.ping();
});

test('terminate removes the user from presence channels (member_removed to the others)', async () => {
  const [u] = await signedIn({ id: 'leaver' });
  await u.subscribe('presence-term', presenceAuth(MAIN_APP, u.socketId, 'presence-term', { user_id: 'leaver' }));
  const other = await open();
  await other.subscribe('presence-term', presenceAuth(MAIN_APP, other.socketId, 'presence-term', { user_id: 'witness' }));
  await api.terminateUserConnections('leaver');
  await u.waitClose();
  const removed = await other.next('pusher_internal:member_removed', { channel: 'presence-term' });
  assert.deepEqual(JSON.parse(removed.data), { user_id: 'leaver' });
});

test('terminate for a user with no connections → 200 {}', async () => {
  const res = await api.terminateUserConnections('nobody-here');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
});

test('terminate with an invalid user id → 400', async () => {
  const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/users/a:b/terminate_connections', { body: {} });
  assert.equal(res.status, 400, res.text);
});

test('the user may reconnect after terminate', async () => {
  const [c] = await signedIn({ id: 'again' });
  await api.terminateUserConnections('again');
  await c.waitClose();
  const [d] = await signedIn({ id: 'again' });
  await api.sendToUser('again', 'welcome-back', {});
  await d.next('welcome-back');
});

// ---------------------------------------------------------------- watchlist (§9.5)

test('watchlist: initial online/offline split after signin, then online/offline on changes', async () => {
  const [b] = await signedIn({ id: 'wb' });
  const [a] = await signedIn({ id: 'wa', watchlist: ['wb', 'wc'] });
  const first = watchlistOf(await a.next('pusher_internal:watchlist_events'));
  assert.deepEqual([...first.online], ['wb']);
  assert.deepEqual([...first.offline], ['wc']);

  const [c] = await signedIn({ id: 'wc' });
  const on = watchlistOf(await a.next('pusher_internal:watchlist_events'));
  assert.deepEqual([...on.online], ['wc']);
  assert.equal(on.offline.size, 0);

  b.close();
  const off = watchlistOf(await a.next('pusher_internal:watchlist_events'));
  assert.deepEqual([...off.offline], ['wb']);
  assert.equal(off.online.size, 0);
  assert.ok(c.isOpen);
});

test('watchlist: offline only when the last signed-in connection of the watched user closes', async () => {
  const [x1] = await signedIn({ id: 'wx' });
  const [x2] = await signedIn({ id: 'wx' });
  const [w] = await signedIn({ id: 'ww', watchlist: ['wx'] });
  const first = watchlistOf(await w.next('pusher_internal:watchlist_events'));
  assert.deepEqual([...first.online], ['wx']);
  // A second sign-in of an already online user is not a change.
  await signedIn({ id: 'wx' });
  x1.close();
  await x1.waitClose();
  await w.nothing('pusher_internal:watchlist_events', 400);
  x2.close();
  // third socket still online
  await w.nothing('pusher_internal:watchlist_events', 300);
});

test('watchlist: users without a watchlist get no watchlist_events', async () => {
  const [a] = await signedIn({ id: 'nowatch' });
  await signedIn({ id: 'someone' });
  await a.nothing('pusher_internal:watchlist_events', 300);
});

test('watchlist with more than 100 ids → signin still succeeds, plus pusher:error 4302', async () => {
  const ids = Array.from({ length: 105 }, (_, i) => `wl${i}`);
  const [c] = await signedIn({ id: 'bigwatch', watchlist: ids });
  const err = await c.next('pusher:error');
  assert.equal(err.data.code, 4302, err.raw);
  const w = watchlistOf(await c.next('pusher_internal:watchlist_events'));
  assert.equal(w.online.size + w.offline.size, 100, 'first 100 ids kept');
  assert.ok(!w.offline.has('wl100') && !w.online.has('wl100'));
  assert.ok(c.isOpen);
});

// ---------------------------------------------------------------- pusher-js

test('pusher-js: signin(), then pusher.user.bind receives sendToUser events', async () => {
  const p = pusherClient(srv, MAIN_APP, { userAuthentication: { customHandler: userAuthHandler(api, { id: 'pjs-user', user_info: { n: 1 } }) } });
  const got = new Collector();
  p.user.bind('notify', got.push);
  p.signin();
  await withTimeout(p.user.signinDonePromise, 4000, 'signin');
  assert.equal(p.user.user_data.id, 'pjs-user');
  // pusher-js subscribes to #server-to-user-pjs-user after sign-in; give it a moment.
  const deadline = Date.now() + 3000;
  while (!(p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed) && Date.now() < deadline) await sleep(20);
  assert.ok(p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed, '#server-to-user channel subscribed');
  await api.sendToUser('pjs-user', 'notify', { hello: 'world' });
  assert.deepEqual(await got.waitFor(1), { hello: 'world' });
  await sleep(200);
  assert.equal(got.items.length, 1, 'delivered once');
});

test('pusher-js: watchlist online/offline via pusher.user.watchlist.bind', async () => {
  const watcher = pusherClient(srv, MAIN_APP, {
    userAuthentication: { customHandler: userAuthHandler(api, { id: 'pjs-watcher', watchlist: ['pjs-friend'] }) },
  });
  const online = new Collector();
  const offline = new Collector();
  watcher.user.watchlist.bind('online', online.push);
  watcher.user.watchlist.bind('offline', offline.push);
  watcher.signin();
  const initialOffline = await offline.waitFor(1, 3000, 'initial offline');
  assert.deepEqual(initialOffline.user_ids, ['pjs-friend']);
  const friend = pusherClient(srv, MAIN_APP, { userAuthentication: { customHandler: userAuthHandler(api, { id: 'pjs-friend' }) } });
  friend.signin();
  const on = await online.waitFor(1, 3000, 'online');
  assert.deepEqual(on.user_ids, ['pjs-friend']);
  friend.disconnect();
  const off = await offline.waitFor(2, 3000, 'offline');
  assert.deepEqual(off.user_ids, ['pjs-friend']);
});

test('pusher-js: terminateUserConnections leaves the client disconnected (4009 = refused)', async () => {
  const p = pusherClient(srv, MAIN_APP, { userAuthentication: { customHandler: userAuthHandler(api, { id: 'pjs-term' }) } });
  p.signin();
  await waitState(p, 'connected');
  await withTimeout(p.user.signinDonePromise, 4000, 'signin');
  await sleep(100);
  await api.terminateUserConnections('pjs-term');
  await waitState(p, 'disconnected', 4000);
  await sleep(1200);
  assert.equal(p.connection.state, 'disconnected');
});

test('pusher-js: presence channel authorized from the signed-in user (no channel_data)', async () => {
  const p = pusherClient(srv, MAIN_APP, {
    userAuthentication: { customHandler: userAuthHandler(api, { id: 'pjs-pres', user_info: { name: 'P' } }) },
    channelAuthorization: { customHandler: channelAuthHandler(api) }, // no presence data → signs socket:channel
  });
  p.signin();
  const ch = p.subscribe('presence-from-signin');
  const members = await once(ch, 'pusher:subscription_succeeded', 4000);
  assert.equal(members.count, 1);
  assert.deepEqual(members.members, { 'pjs-pres': { name: 'P' } });
});

// ---------------------------------------------------------------- authorized connections (§9.6)

test('authorized connections: a connection that does nothing is closed 4009 after the timeout', async () => {
  const c = await open(STRICT);
  const close = await c.waitClose(4000);
  assert.equal(close.code, 4009);
});

test('authorized connections: subscribing only to public channels does not count', async () => {
  const c = await open(STRICT);
  await c.subscribe('public-only', { auth: '' });
  const close = await c.waitClose(4000);
  assert.equal(close.code, 4009);
});

test('authorized connections: a signed-in connection stays', async () => {
  const [c] = await signedIn({ id: 'strict-user' }, STRICT);
  await sleep(2000);
  assert.ok(c.isOpen, JSON.stringify(c.closeInfo));
  await c.ping();
});

test('authorized connections: a private subscription counts as authorization', async () => {
  const c = await open(STRICT);
  await c.subscribe('private-strict', { auth: privateAuth(STRICT, c.socketId, 'private-strict') });
  await sleep(2000);
  assert.ok(c.isOpen, JSON.stringify(c.closeInfo));
});

test('authorized connections: a presence subscription counts as authorization', async () => {
  const c = await open(STRICT);
  await c.subscribe('presence-strict', presenceAuth(STRICT, c.socketId, 'presence-strict', { user_id: 'p' }));
  await sleep(2000);
  assert.ok(c.isOpen, JSON.stringify(c.closeInfo));
});

test('authorized connections: a bad signin → pusher:error 4009 and close 4009', async () => {
  const c = await open(STRICT);
  c.send({ event: 'pusher:signin', data: { auth: `${STRICT.key}:${'0'.repeat(64)}`, user_data: '{"id":"x"}' } });
  const err = await c.next('pusher:error', { allowClosed: true });
  assert.equal(err.data.code, 4009, err.raw);
  assert.equal((await c.waitClose()).code, 4009);
});
