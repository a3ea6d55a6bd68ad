'use strict';
// Presence channels (PROTOCOL.md §3.1 step 5, §4.2, §4.4, §5.3, §8, §9.2, §12.6, §12.7, §17 b).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, dataOf, sleep } = require('../lib/ws-client');
const { authFor, presenceAuth, privateAuth, userAuth } = require('../lib/auth');
const { sdk, pusherClient, channelAuthHandler, once, cleanupClients, Collector } = require('../lib/clients');

const SMALL = { id: '11', key: 'small-presence-key', secret: 'small-presence-secret', max_presence_members: 2 };

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP }, small: SMALL } });
  api = sdk(srv, MAIN_APP);
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

const open = (app = MAIN_APP) => RawClient.open(srv.wsUrl(app.key));

/** Opens a socket and joins `channel` as `member` ({user_id, user_info?}); returns [client, succeeded msg]. */
async function join(channel, member, app = MAIN_APP) {
  const c = await open(app);
  const r = await c.subscribe(channel, presenceAuth(app, c.socketId, channel, member));
  return [c, r];
}

function presenceOf(msg) {
  assert.equal(msg.event, 'pusher_internal:subscription_succeeded', msg.raw);
  assert.equal(typeof msg.data, 'string', `presence subscription data must be a JSON string: ${msg.raw}`);
  return JSON.parse(msg.data).presence;
}

function expectRefused(msg, channel, type, status) {
  assert.equal(msg.event, 'pusher:subscription_error', `expected refusal, got ${msg.raw}`);
  assert.equal(msg.channel, channel);
  assert.equal(typeof msg.data, 'object', msg.raw);
  if (type) assert.equal(msg.data.type, type, msg.raw);
  if (status) assert.equal(msg.data.status, status, msg.raw);
}

test('known-answer vector (b): presence auth for 1234.1234 / presence-foobar', () => {
  const cd = '{"user_id":10,"user_info":{"name":"Mr. Channels"}}';
  assert.equal(
    presenceAuth(MAIN_APP, '1234.1234', 'presence-foobar', cd).auth,
    '278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80',
  );
  const r = api.authorizeChannel('1234.1234', 'presence-foobar', { user_id: 10, user_info: { name: 'Mr. Channels' } });
  assert.equal(r.channel_data, cd);
  assert.equal(r.auth, presenceAuth(MAIN_APP, '1234.1234', 'presence-foobar', cd).auth);
});

test('subscription_succeeded carries {presence:{ids,hash,count}} including the subscriber', async () => {
  const [, r] = await join('presence-basic', { user_id: 'alice', user_info: { name: 'Alice' } });
  const p = presenceOf(r);
  assert.deepEqual(p.ids, ['alice']);
  assert.deepEqual(p.hash, { alice: { name: 'Alice' } });
  assert.equal(p.count, 1);
});

test('numeric user_id becomes its decimal string everywhere', async () => {
  const [a, r] = await join('presence-numeric', { user_id: 10, user_info: { name: 'Mr. Channels' } });
  const p = presenceOf(r);
  assert.deepEqual(p.ids, ['10']);
  assert.deepEqual(Object.keys(p.hash), ['10']);
  const [b] = await join('presence-numeric', { user_id: 11 });
  const added = await a.next('pusher_internal:member_added', { channel: 'presence-numeric' });
  assert.equal(typeof added.data, 'string');
  assert.strictEqual(JSON.parse(added.data).user_id, '11');
  b.close();
  const removed = await a.next('pusher_internal:member_removed', { channel: 'presence-numeric' });
  assert.strictEqual(JSON.parse(removed.data).user_id, '11');
  const users = await api.get({ path: '/channels/presence-numeric/users' }).then((res) => res.json());
  assert.deepEqual(users, { users: [{ id: '10' }] });
});

test('member_added goes to the others (not the joiner); the joiner sees everyone', async () => {
  const [a] = await join('presence-join', { user_id: 'a', user_info: { n: 1 } });
  const [b, rb] = await join('presence-join', { user_id: 'b', user_info: { n: 2 } });
  const added = await a.next('pusher_internal:member_added', { channel: 'presence-join' });
  assert.deepEqual(JSON.parse(added.data), { user_id: 'b', user_info: { n: 2 } });
  const p = presenceOf(rb);
  assert.deepEqual([...p.ids].sort(), ['a', 'b']);
  assert.deepEqual(p.hash, { a: { n: 1 }, b: { n: 2 } });
  assert.equal(p.count, 2);
  await b.nothing('pusher_internal:member_added', 300);
});

test('member_removed on unsubscribe and on disconnect, sent to the remaining sockets', async () => {
  const [a] = await join('presence-leave', { user_id: 'a' });
  const [b] = await join('presence-leave', { user_id: 'b' });
  const [c] = await join('presence-leave', { user_id: 'c' });
  b.unsubscribe('presence-leave');
  const r1 = await a.next('pusher_internal:member_removed', { channel: 'presence-leave' });
  assert.equal(typeof r1.data, 'string');
  assert.deepEqual(JSON.parse(r1.data), { user_id: 'b' });
  await c.next('pusher_internal:member_removed', { channel: 'presence-leave', where: (m) => dataOf(m).user_id === 'b' });
  c.terminate();
  const r2 = await a.next('pusher_internal:member_removed', { channel: 'presence-leave' });
  assert.deepEqual(JSON.parse(r2.data), { user_id: 'c' });
  await b.nothing('pusher_internal:member_removed', 200);
});

test('one member per user_id across sockets; removed only when the last socket leaves', async () => {
  const [watcher] = await join('presence-multi', { user_id: 'w' });
  const [u1] = await join('presence-multi', { user_id: 'u', user_info: { tab: 1 } });
  await watcher.next('pusher_internal:member_added', { channel: 'presence-multi' });
  const [u2, r2] = await join('presence-multi', { user_id: 'u', user_info: { tab: 2 } });
  const p = presenceOf(r2);
  assert.equal(p.count, 2, `count must count distinct users: ${r2.data}`);
  assert.deepEqual([...p.ids].sort(), ['u', 'w']);
  assert.deepEqual(p.hash.u, { tab: 1 }, 'first user_info wins');
  await watcher.nothing('pusher_internal:member_added', 300);
  u1.close();
  await u1.waitClose();
  await watcher.nothing('pusher_internal:member_removed', 400);
  u2.unsubscribe('presence-multi');
  const removed = await watcher.next('pusher_internal:member_removed', { channel: 'presence-multi' });
  assert.deepEqual(JSON.parse(removed.data), { user_id: 'u' });
});

test('the same socket subscribing twice does not duplicate the member', async () => {
  const c = await open();
  const auth = presenceAuth(MAIN_APP, c.socketId, 'presence-dup', { user_id: 'd' });
  await c.subscribe('presence-dup', auth);
  const r = await c.subscribe('presence-dup', auth);
  assert.equal(r.event, 'pusher_internal:subscription_succeeded');
  const [, r2] = await join('presence-dup', { user_id: 'e' });
  assert.equal(presenceOf(r2).count, 2);
});

test('user_info may be any JSON value (string, number, array)', async () => {
  const [a] = await join('presence-anyinfo', { user_id: 's', user_info: 'just a string' });
  await join('presence-anyinfo', { user_id: 'n', user_info: 42 });
  const [, r] = await join('presence-anyinfo', { user_id: 'arr', user_info: [1, 2] });
  assert.deepEqual(presenceOf(r).hash, { s: 'just a string', n: 42, arr: [1, 2] });
  const added = await a.next('pusher_internal:member_added', { where: (m) => dataOf(m).user_id === 'n' });
  assert.deepEqual(JSON.parse(added.data), { user_id: 'n', user_info: 42 });
});

test('a member without user_info appears in hash with {}', async () => {
  const [, r] = await join('presence-noinfo', { user_id: 'bare' });
  assert.deepEqual(presenceOf(r).hash, { bare: {} });
});

test('member limit: the next distinct user gets LimitReached 4100; an existing member may add a socket', async () => {
  await join('presence-limit', { user_id: '1' }, SMALL);
  await join('presence-limit', { user_id: '2' }, SMALL);
  const [c, r] = await join('presence-limit', { user_id: '3' }, SMALL);
  expectRefused(r, 'presence-limit', 'LimitReached', 4100);
  await c.ping();
  const [, again] = await join('presence-limit', { user_id: '1' }, SMALL);
  assert.equal(again.event, 'pusher_internal:subscription_succeeded', again.raw);
  assert.equal(presenceOf(again).count, 2);
});

test('user_info larger than max_presence_user_info_bytes (1024) → LimitReached 4100', async () => {
  const [, ok] = await join('presence-big', { user_id: 'small', user_info: { pad: 'x'.repeat(900) } });
  assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
  const [c, r] = await join('presence-big', { user_id: 'big', user_info: { pad: 'x'.repeat(1100) } });
  expectRefused(r, 'presence-big', 'LimitReached', 4100);
  await c.ping();
});

test('user_id of 128 characters is accepted, 129 refused', async () => {
  const [, ok] = await join('presence-len', { user_id: 'u'.repeat(128) });
  assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
  const [, bad] = await join('presence-len', { user_id: 'u'.repeat(129) });
  expectRefused(bad, 'presence-len');
});

for (const [label, channelData] of [
  ['not JSON', 'not json'],
  ['trailing bytes after the object', '{"user_id":"t"}x'],
  ['two objects', '{"user_id":"t"}{"user_id":"u"}'],
  ['duplicate keys', '{"user_id":"t","user_id":"u"}'],
  ['a JSON array', '[{"user_id":"t"}]'],
  ['missing user_id', '{"user_info":{}}'],
  ['empty user_id', '{"user_id":""}'],
  ['null user_id', '{"user_id":null}'],
  ['object user_id', '{"user_id":{"id":1}}'],
  ['boolean user_id', '{"user_id":true}'],
  ['control character in user_id', '{"user_id":"a\\u0007b"}'],
]) {
  test(`channel_data ${label} → refused even with a valid signature`, async () => {
    const c = await open();
    const r = await c.subscribe('presence-strict', presenceAuth(MAIN_APP, c.socketId, 'presence-strict', channelData));
    expectRefused(r, 'presence-strict');
    await c.ping();
  });
}

test('bad presence signature → AuthError 401', async () => {
  const c = await open();
  const good = presenceAuth(MAIN_APP, c.socketId, 'presence-bad', { user_id: 'x' });
  const r = await c.subscribe('presence-bad', { auth: `${MAIN_APP.key}:${'a'.repeat(64)}`, channel_data: good.channel_data });
  expectRefused(r, 'presence-bad', 'AuthError', 401);
});

test('channel_data changed after signing (user_id swap) → AuthError 401', async () => {
  const c = await open();
  const good = presenceAuth(MAIN_APP, c.socketId, 'presence-swap', { user_id: 'me' });
  const r = await c.subscribe('presence-swap', { auth: good.auth, channel_data: '{"user_id":"admin"}' });
  expectRefused(r, 'presence-swap', 'AuthError', 401);
});

test('channel_data with different spacing than signed → refused (signature covers the exact bytes)', async () => {
  const c = await open();
  const good = presenceAuth(MAIN_APP, c.socketId, 'presence-bytes', '{"user_id":"me"}');
  const r = await c.subscribe('presence-bytes', { auth: good.auth, channel_data: '{"user_id": "me"}' });
  expectRefused(r, 'presence-bytes', 'AuthError', 401);
});

test('channel_data signed with exotic-but-valid JSON spacing is accepted as signed', async () => {
  const c = await open();
  const r = await c.subscribe('presence-spacing', presenceAuth(MAIN_APP, c.socketId, 'presence-spacing', '{ "user_id" : "sp" , "user_info" : { "k" : 1 } }'));
  const p = presenceOf(r);
  assert.deepEqual(p.hash, { sp: { k: 1 } });
});

test('presence without channel_data and not signed in → refused', async () => {
  const c = await open();
  const r = await c.subscribe('presence-nodata', { auth: privateAuth(MAIN_APP, c.socketId, 'presence-nodata') });
  expectRefused(r, 'presence-nodata');
});

test('presence without channel_data when signed in → member taken from user_data (§9.2)', async () => {
  const c = await open();
  c.send({ event: 'pusher:signin', data: userAuth(MAIN_APP, c.socketId, { id: 'signed', user_info: { name: 'Signed In' } }) });
  await c.next('pusher:signin_success');
  const r = await c.subscribe('presence-signedin', { auth: privateAuth(MAIN_APP, c.socketId, 'presence-signedin') });
  const p = presenceOf(r);
  assert.deepEqual(p.ids, ['signed']);
  assert.deepEqual(p.hash, { signed: { name: 'Signed In' } });
});

test('presence-cache- channels have presence semantics', async () => {
  const [a, r] = await join('presence-cache-room', { user_id: 'pa' });
  assert.equal(presenceOf(r).count, 1);
  await join('presence-cache-room', { user_id: 'pb' });
  const added = await a.next('pusher_internal:member_added', { channel: 'presence-cache-room' });
  assert.equal(JSON.parse(added.data).user_id, 'pb');
});

test('presence membership is per app (same channel name on two apps)', async () => {
  const [a] = await join('presence-iso', { user_id: 'main-user' });
  const [, r] = await join('presence-iso', { user_id: 'small-user' }, SMALL);
  assert.deepEqual(presenceOf(r).ids, ['small-user']);
  await a.nothing('pusher_internal:member_added', 300);
});

test('HTTP API: users list and user_count reflect distinct users', async () => {
  await join('presence-api', { user_id: 'x' });
  await join('presence-api', { user_id: 'y' });
  await join('presence-api', { user_id: 'y' });
  const users = await (await api.get({ path: '/channels/presence-api/users' })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['x', 'y']);
  for (const u of users.users) assert.equal(typeof u.id, 'string');
  const info = await (await api.get({ path: '/channels/presence-api', params: { info: 'user_count,subscription_count' } })).json();
  assert.equal(info.occupied, true);
  assert.equal(info.user_count, 2);
  assert.equal(info.subscription_count, 3);
});

test('pusher-js: members.me, members.count, member_added / member_removed with {id, info}', async () => {
  const mk = (id, info) => pusherClient(srv, MAIN_APP, {
    channelAuthorization: { customHandler: channelAuthHandler(api, { presence: () => ({ user_id: id, user_info: info }) }) },
  });
  const p1 = mk('p1', { name: 'One' });
  const ch1 = p1.subscribe('presence-pjs');
  const members = await once(ch1, 'pusher:subscription_succeeded');
  assert.equal(members.count, 1);
  assert.deepEqual(members.me, { id: 'p1', info: { name: 'One' } });
  const added = new Collector();
  const removed = new Collector();
  ch1.bind('pusher:member_added', added.push);
  ch1.bind('pusher:member_removed', removed.push);
  const p2 = mk('p2', { name: 'Two' });
  const ch2 = p2.subscribe('presence-pjs');
  const m2 = await once(ch2, 'pusher:subscription_succeeded');
  assert.equal(m2.count, 2);
  const seen = [];
  m2.each((m) => seen.push(m.id));
  assert.deepEqual(seen.sort(), ['p1', 'p2']);
  assert.deepEqual(m2.get('p1'), { id: 'p1', info: { name: 'One' } });
  assert.deepEqual(await added.waitFor(1), { id: 'p2', info: { name: 'Two' } });
  assert.equal(ch1.members.count, 2);
  p2.disconnect();
  assert.deepEqual(await removed.waitFor(1), { id: 'p2', info: { name: 'Two' } });
  assert.equal(ch1.members.count, 1);
});

test('pusher-js: a member-limit refusal reaches pusher:subscription_error', async () => {
  const smallApi = sdk(srv, SMALL);
  const mk = (id) => pusherClient(srv, SMALL, {
    channelAuthorization: { customHandler: channelAuthHandler(smallApi, { presence: () => ({ user_id: id }) }) },
  });
  for (const id of ['l1', 'l2']) await once(mk(id).subscribe('presence-pjs-limit'), 'pusher:subscription_succeeded');
  const err = await once(mk('l3').subscribe('presence-pjs-limit'), 'pusher:subscription_error');
  assert.equal(err.type, 'LimitReached');
  assert.equal(err.status, 4100);
  await sleep(10);
});
