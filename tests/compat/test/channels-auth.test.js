'use strict';
// Subscribing: channel kinds, name validation, private-channel auth, injection attempts,
// unsubscribe, subscription_count (PROTOCOL.md §3.1, §3.2, §4.2, §4.3, §4.5, §5, §6, §15, §17).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, dataOf, sleep } = require('../lib/ws-client');
const { hmacHex, authFor, privateAuth, presenceAuth } = require('../lib/auth');
const {
  sdk, pusherClient, channelAuthHandler, once, waitState, cleanupClients,
} = require('../lib/clients');

const COUNTED = { id: '7', key: 'counted-app-key', secret: 'counted-app-secret', subscription_count: true };
const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP }, counted: COUNTED } });
  api = sdk(srv, MAIN_APP, { encryptionMasterKeyBase64: MASTER_KEY });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

const open = (app = MAIN_APP) => RawClient.open(srv.wsUrl(app.key));

function assertSucceeded(msg, channel) {
  assert.equal(msg.event, 'pusher_internal:subscription_succeeded', `expected success on ${channel}, got ${msg.raw}`);
  assert.equal(msg.channel, channel);
}

function assertSubError(msg, channel, type, status) {
  assert.equal(msg.event, 'pusher:subscription_error', `expected refusal on ${JSON.stringify(channel)}, got ${msg.raw}`);
  assert.equal(msg.channel, channel);
  assert.equal(typeof msg.data, 'object', `subscription_error data must be an object: ${msg.raw}`);
  assert.equal(typeof msg.data.error, 'string', msg.raw);
  if (type) assert.equal(msg.data.type, type, msg.raw);
  if (status) assert.equal(msg.data.status, status, msg.raw);
}

// ---------------------------------------------------------------- public channels

test('public channel with auth "" → subscription_succeeded with data "{}" (string)', async () => {
  const c = await open();
  const r = await c.subscribe('news', { auth: '' });
  assertSucceeded(r, 'news');
  assert.equal(r.data, '{}', `data must be the string "{}": ${r.raw}`);
});

test('public channel without auth member → succeeded', async () => {
  const c = await open();
  assertSucceeded(await c.subscribe('news-no-auth'), 'news-no-auth');
});

test('public channel with arbitrary auth → succeeded (no auth check on public channels)', async () => {
  const c = await open();
  assertSucceeded(await c.subscribe('news-garbage-auth', { auth: 'whatever:1234' }), 'news-garbage-auth');
});

test('the docs example name foo-bar_1234@=,.; is a valid public channel', async () => {
  const c = await open();
  assertSucceeded(await c.subscribe('foo-bar_1234@=,.;', { auth: '' }), 'foo-bar_1234@=,.;');
});

test('a 200-character name is valid', async () => {
  const c = await open();
  const name = 'a'.repeat(200);
  assertSucceeded(await c.subscribe(name, { auth: '' }), name);
});

// ---------------------------------------------------------------- invalid names

for (const [label, name] of [
  ['201 characters', 'a'.repeat(201)],
  ['empty name', ''],
  ['colon in private-a:b', 'private-a:b'],
  ['space in presence-x y', 'presence-x y'],
  ['#other', '#other'],
  ['# inside a name', 'private-a#b'],
  ['Greek omicron look-alike private-fοο', 'private-f\u03bf\u03bf'],
  ['Cyrillic a look-alike', 'priv\u0430te-x'],
  ['fullwidth digits', 'news-\uff11\uff12'],
  ['trailing newline', 'news\n'],
  ['NUL byte', 'news\u0000x'],
  ['slash', 'a/b'],
  ['asterisk', 'news*'],
]) {
  test(`invalid channel name (${label}) → subscription_error InvalidChannel 400`, async () => {
    const c = await open();
    const r = await c.subscribe(name, { auth: '' });
    assertSubError(r, name, 'InvalidChannel', 400);
    // Connection still usable.
    await c.ping();
  });
}

test('#server-to-user-* without sign-in → refused', async () => {
  const c = await open();
  const r = await c.subscribe('#server-to-user-123', { auth: '' });
  assert.equal(r.event, 'pusher:subscription_error', r.raw);
  assert.equal(r.channel, '#server-to-user-123');
});

// ---------------------------------------------------------------- private channels

test('known-answer vector (a): private auth for 1234.1234 / private-foobar', () => {
  assert.equal(
    privateAuth(MAIN_APP, '1234.1234', 'private-foobar'),
    '278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4',
  );
  assert.equal(api.authorizeChannel('1234.1234', 'private-foobar').auth, privateAuth(MAIN_APP, '1234.1234', 'private-foobar'));
});

test('private channel with a valid auth → succeeded with data "{}"', async () => {
  const c = await open();
  const r = await c.subscribe('private-foobar', { auth: privateAuth(MAIN_APP, c.socketId, 'private-foobar') });
  assertSucceeded(r, 'private-foobar');
  assert.equal(r.data, '{}');
});

test('private channel with SDK-produced auth → succeeded', async () => {
  const c = await open();
  const { auth } = api.authorizeChannel(c.socketId, 'private-sdk');
  assertSucceeded(await c.subscribe('private-sdk', { auth }), 'private-sdk');
});

test('private channel: a channel_data member sent along a valid auth is ignored (not signed, not refused)', async () => {
  const c = await open();
  const r = await c.subscribe('private-with-cd', { auth: privateAuth(MAIN_APP, c.socketId, 'private-with-cd'), channel_data: '{"user_id":"x"}' });
  assertSucceeded(r, 'private-with-cd');
});

test('private auth with upper-case hex is accepted (§6.2)', async () => {
  const c = await open();
  const sig = hmacHex(MAIN_APP.secret, `${c.socketId}:private-upper`).toUpperCase();
  assertSucceeded(await c.subscribe('private-upper', { auth: `${MAIN_APP.key}:${sig}` }), 'private-upper');
});

for (const [label, makeAuth] of [
  ['missing auth', () => undefined],
  ['empty auth', () => ''],
  ['garbage auth', () => 'garbage'],
  ['key only', () => `${MAIN_APP.key}:`],
  ['wrong signature', () => `${MAIN_APP.key}:${'0'.repeat(64)}`],
  ['63 hex digits', (sid, ch) => privateAuth(MAIN_APP, sid, ch).slice(0, -1)],
  ['65 hex digits', (sid, ch) => `${privateAuth(MAIN_APP, sid, ch)}0`],
  ['non-hex signature', () => `${MAIN_APP.key}:${'z'.repeat(64)}`],
  ['signature for another channel', (sid) => privateAuth(MAIN_APP, sid, 'private-other')],
  ['signature for another socket id', () => privateAuth(MAIN_APP, '1234.1234', 'private-target')],
  ['right signature, wrong key prefix', (sid, ch) => `${COUNTED.key}:${hmacHex(MAIN_APP.secret, `${sid}:${ch}`)}`],
  ['signed with another app secret', (sid, ch) => `${MAIN_APP.key}:${hmacHex(COUNTED.secret, `${sid}:${ch}`)}`],
  ['signature without key prefix', (sid, ch) => hmacHex(MAIN_APP.secret, `${sid}:${ch}`)],
]) {
  test(`private channel, ${label} → subscription_error AuthError 401; connection kept`, async () => {
    const c = await open();
    const channel = 'private-target';
    const r = await c.subscribe(channel, { auth: makeAuth(c.socketId, channel) });
    assertSubError(r, channel, 'AuthError', 401);
    await c.ping();
    // A correct subscribe afterwards still works.
    assertSucceeded(await c.subscribe(channel, { auth: privateAuth(MAIN_APP, c.socketId, channel) }), channel);
  });
}

test('private channel, auth as a non-string (number) → refused (subscription_error or pusher:error), connection kept', async () => {
  const c = await open();
  c.send({ event: 'pusher:subscribe', data: { channel: 'private-numauth', auth: 12345 } });
  const m = await c.next((x) => x.event === 'pusher:error' || (x.channel === 'private-numauth'));
  assert.notEqual(m.event, 'pusher_internal:subscription_succeeded', m.raw);
  await c.ping();
});

test('the socket id comes from the server record, never from the frame', async () => {
  const a = await open();
  const b = await open();
  const auth = privateAuth(MAIN_APP, b.socketId, 'private-owned-by-b');
  const r = await a.subscribe('private-owned-by-b', { auth, extra: { socket_id: b.socketId } });
  assertSubError(r, 'private-owned-by-b', 'AuthError', 401);
});

// ---------------------------------------------------------------- injection (§15, §17 g)

test('injection: channel_data is not appended for private channels (Reverb pitfall)', async () => {
  const c = await open();
  // What an auth endpoint produces if fed socket_id "<real>:private-victim" for channel "private-allowed".
  const auth = authFor(MAIN_APP, `${c.socketId}:private-victim:private-allowed`);
  const r = await c.subscribe('private-victim', { auth, channel_data: 'private-allowed' });
  assertSubError(r, 'private-victim', 'AuthError', 401);
});

test('injection: auth computed for socket id "<real>:private-y" is refused on private-x', async () => {
  const c = await open();
  const auth = authFor(MAIN_APP, `${c.socketId}:private-y:private-x`);
  assertSubError(await c.subscribe('private-x', { auth }), 'private-x', 'AuthError', 401);
  assertSubError(await c.subscribe('private-y', { auth }), 'private-y', 'AuthError', 401);
});

test('injection: private signature whose tail is channel_data is refused on private-x', async () => {
  const c = await open();
  const auth = authFor(MAIN_APP, `${c.socketId}:private-x:{"user_id":"1"}`);
  const r = await c.subscribe('private-x', { auth, channel_data: '{"user_id":"1"}' });
  assertSubError(r, 'private-x', 'AuthError', 401);
});

test('injection: presence channel_data that is a channel name (not a JSON object) is refused even if signed', async () => {
  const c = await open();
  // Signature an endpoint yields for socket_id "<real>:presence-victim", channel "private-ok".
  const auth = authFor(MAIN_APP, `${c.socketId}:presence-victim:private-ok`);
  const r = await c.subscribe('presence-victim', { auth, channel_data: 'private-ok' });
  assert.equal(r.event, 'pusher:subscription_error', r.raw);
  assert.equal(r.channel, 'presence-victim');
});

test('injection: signatures over strings with a newline around the socket id are refused', async () => {
  const c = await open();
  for (const s of [`${c.socketId}\n:private-nl`, `${c.socketId}:private-nl\n`, `\n${c.socketId}:private-nl`, ` ${c.socketId}:private-nl`]) {
    const r = await c.subscribe('private-nl', { auth: authFor(MAIN_APP, s) });
    assertSubError(r, 'private-nl', 'AuthError', 401);
  }
});

test('injection: a channel name containing ":" is invalid even with a matching signature', async () => {
  const c = await open();
  const auth = privateAuth(MAIN_APP, c.socketId, 'private-x:private-y');
  assertSubError(await c.subscribe('private-x:private-y', { auth }), 'private-x:private-y', 'InvalidChannel', 400);
});

test('injection: user sign-in signature is not accepted as channel auth', async () => {
  const c = await open();
  const auth = authFor(MAIN_APP, `${c.socketId}::user::{"id":"1"}`);
  assertSubError(await c.subscribe('private-signin-reuse', { auth }), 'private-signin-reuse', 'AuthError', 401);
});

test('prefixes are anchored: foo-private-x is a public channel', async () => {
  const c = await open();
  assertSucceeded(await c.subscribe('foo-private-x', { auth: '' }), 'foo-private-x');
  assertSucceeded(await c.subscribe('xpresence-y', { auth: '' }), 'xpresence-y');
});

// ---------------------------------------------------------------- other kinds

test('private-encrypted- with auth → succeeded; a shared_secret member in the frame is ignored', async () => {
  const c = await open();
  const { auth, shared_secret } = api.authorizeChannel(c.socketId, 'private-encrypted-foo');
  const r = await c.subscribe('private-encrypted-foo', { auth, extra: { shared_secret } });
  assertSucceeded(r, 'private-encrypted-foo');
});

test('private-encrypted- without auth → AuthError', async () => {
  const c = await open();
  assertSubError(await c.subscribe('private-encrypted-noauth', { auth: '' }), 'private-encrypted-noauth', 'AuthError', 401);
});

for (const [channel, kind] of [
  ['cache-kinds', 'public'],
  ['private-cache-kinds', 'private'],
  ['private-encrypted-cache-kinds', 'private'],
  ['presence-cache-kinds', 'presence'],
]) {
  test(`${channel} (${kind}) subscribes with the right auth and is refused without`, async () => {
    const c = await open();
    if (kind !== 'public') {
      assertSubError(await c.subscribe(channel, { auth: '' }), channel, 'AuthError', 401);
    }
    let opts = { auth: '' };
    if (kind === 'private') opts = { auth: privateAuth(MAIN_APP, c.socketId, channel) };
    if (kind === 'presence') opts = presenceAuth(MAIN_APP, c.socketId, channel, { user_id: 'u1' });
    assertSucceeded(await c.subscribe(channel, opts), channel);
  });
}

// ---------------------------------------------------------------- re-subscribe / unsubscribe

test('subscribing twice re-sends subscription_succeeded; events are delivered once', async () => {
  const c = await open();
  assertSucceeded(await c.subscribe('twice', { auth: '' }), 'twice');
  assertSucceeded(await c.subscribe('twice', { auth: '' }), 'twice');
  await api.trigger('twice', 'ev', { n: 1 });
  await c.next('ev', { channel: 'twice' });
  await c.nothing('ev', 300);
});

test('unsubscribe: no reply, and no more events for that channel', async () => {
  const c = await open();
  await c.subscribe('unsub-a', { auth: '' });
  await c.subscribe('unsub-b', { auth: '' });
  c.unsubscribe('unsub-a');
  await c.ping(); // ordered after the unsubscribe
  await api.trigger(['unsub-a', 'unsub-b'], 'ev', 'x');
  const ev = await c.next('ev');
  assert.equal(ev.channel, 'unsub-b');
  await c.nothing((m) => m.channel === 'unsub-a' && m.event !== 'pusher_internal:subscription_succeeded', 300);
  assert.ok(!c.all.some((m) => m.channel === 'unsub-a' && m.event !== 'pusher_internal:subscription_succeeded'), 'no reply to unsubscribe');
});

test('unsubscribe from a channel never subscribed, or an invalid name, is ignored silently', async () => {
  const c = await open();
  c.unsubscribe('never-subscribed');
  c.unsubscribe('private-a:b');
  c.unsubscribe('');
  await c.ping();
  await c.nothing((m) => m.event === 'pusher:error' || m.event === 'pusher:subscription_error', 200);
  assert.ok(c.isOpen);
});

test('subscribe with no channel member → error, connection kept', async () => {
  const c = await open();
  c.send({ event: 'pusher:subscribe', data: { auth: '' } });
  const m = await c.next((x) => x.event === 'pusher:error' || x.event === 'pusher:subscription_error');
  assert.ok(m);
  await c.ping();
});

// ---------------------------------------------------------------- delivered event frames

for (const [label, data] of [
  ['JSON with odd spacing', '{ "a" : 1 ,"b":[1, 2] }'],
  ['plain text (not JSON)', 'hello world'],
  ['a JSON string', '"quoted"'],
  ['unicode and escapes', '{"emoji":"\u{1F600} é","ls":"\u2028","esc":"\\u00e9"}'],
]) {
  test(`HTTP-triggered event data is forwarded byte-for-byte (${label})`, async () => {
    const c = await open();
    await c.subscribe('bytes', { auth: '' });
    await api.trigger('bytes', 'my-event', data);
    const ev = await c.next('my-event', { channel: 'bytes' });
    assert.equal(ev.data, data);
    assert.equal(ev.user_id, undefined);
    assert.deepEqual(Object.keys(JSON.parse(ev.raw)).sort(), ['channel', 'data', 'event']);
  });
}

// ---------------------------------------------------------------- subscription_count (§4.5)

test('subscription_count: subscribers receive pusher_internal:subscription_count as the count changes', async () => {
  const a = await open(COUNTED);
  const b = await open(COUNTED);
  await a.subscribe('counted-news', { auth: '' });
  const c1 = await a.next('pusher_internal:subscription_count', { channel: 'counted-news' });
  assert.equal(typeof c1.data, 'string', 'data is a JSON string');
  assert.deepEqual(JSON.parse(c1.data), { subscription_count: 1 });
  await b.subscribe('counted-news', { auth: '' });
  const a2 = await a.next('pusher_internal:subscription_count', { channel: 'counted-news', where: (m) => dataOf(m).subscription_count === 2 });
  assert.ok(a2);
  await b.next('pusher_internal:subscription_count', { channel: 'counted-news', where: (m) => dataOf(m).subscription_count === 2 });
  b.unsubscribe('counted-news');
  await a.next('pusher_internal:subscription_count', { channel: 'counted-news', where: (m) => dataOf(m).subscription_count === 1 });
  b.close();
});

test('subscription_count is never sent on presence channels', async () => {
  const a = await open(COUNTED);
  const b = await open(COUNTED);
  await a.subscribe('presence-counted', presenceAuth(COUNTED, a.socketId, 'presence-counted', { user_id: 'a' }));
  await b.subscribe('presence-counted', presenceAuth(COUNTED, b.socketId, 'presence-counted', { user_id: 'b' }));
  await a.nothing('pusher_internal:subscription_count', 400);
  await b.nothing('pusher_internal:subscription_count', 10);
});

test('subscription_count is not sent when the app has it off', async () => {
  const a = await open();
  const b = await open();
  await a.subscribe('uncounted', { auth: '' });
  await b.subscribe('uncounted', { auth: '' });
  await a.nothing('pusher_internal:subscription_count', 400);
});

test('pusher-js exposes subscription_count (pusher:subscription_count, channel.subscriptionCount)', async () => {
  const api2 = sdk(srv, COUNTED);
  const p1 = pusherClient(srv, COUNTED, { channelAuthorization: { customHandler: channelAuthHandler(api2) } });
  const p2 = pusherClient(srv, COUNTED, { channelAuthorization: { customHandler: channelAuthHandler(api2) } });
  const ch1 = p1.subscribe('counted-pjs');
  await once(ch1, 'pusher:subscription_succeeded');
  const counts = [];
  ch1.bind('pusher:subscription_count', (d) => counts.push(d.subscription_count));
  const ch2 = p2.subscribe('counted-pjs');
  await once(ch2, 'pusher:subscription_succeeded');
  const deadline = Date.now() + 3000;
  while (ch1.subscriptionCount !== 2 && Date.now() < deadline) await sleep(50);
  assert.equal(ch1.subscriptionCount, 2, `counts seen: ${counts}`);
});

// ---------------------------------------------------------------- pusher-js interop

test('pusher-js: public subscribe, then an SDK trigger reaches the bound callback (JSON parsed)', async () => {
  const p = pusherClient(srv, MAIN_APP);
  const ch = p.subscribe('pjs-public');
  await once(ch, 'pusher:subscription_succeeded');
  const got = once(ch, 'order-shipped');
  await api.trigger('pjs-public', 'order-shipped', { id: 42, items: ['a'] });
  assert.deepEqual(await got, { id: 42, items: ['a'] });
});

test('pusher-js: private channel with a customHandler using the SDK → subscribed; events arrive', async () => {
  const p = pusherClient(srv, MAIN_APP, { channelAuthorization: { customHandler: channelAuthHandler(api) } });
  const ch = p.subscribe('private-pjs');
  await once(ch, 'pusher:subscription_succeeded');
  const got = once(ch, 'secret-news');
  await api.trigger('private-pjs', 'secret-news', 'plain string');
  assert.equal(await got, 'plain string');
});

test('pusher-js: a server-side refusal reaches pusher:subscription_error with {type, error, status}', async () => {
  const p = pusherClient(srv, MAIN_APP, {
    channelAuthorization: {
      customHandler: channelAuthHandler(api, { tamper: (r) => ({ ...r, auth: `${MAIN_APP.key}:${'1'.repeat(64)}` }) }),
    },
  });
  await waitState(p, 'connected');
  const ch = p.subscribe('private-pjs-bad');
  const err = await once(ch, 'pusher:subscription_error');
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 401);
  assert.equal(typeof err.error, 'string');
  assert.equal(ch.subscribed, false);
});

test('pusher-js: bind_global sees channel events and unsubscribe stops them', async () => {
  const p = pusherClient(srv, MAIN_APP);
  const ch = p.subscribe('pjs-global');
  await once(ch, 'pusher:subscription_succeeded');
  const seen = [];
  ch.bind_global((name, data) => { if (!name.startsWith('pusher')) seen.push([name, data]); });
  await api.trigger('pjs-global', 'e1', { a: 1 });
  const deadline = Date.now() + 3000;
  while (seen.length < 1 && Date.now() < deadline) await sleep(20);
  assert.deepEqual(seen, [['e1', { a: 1 }]]);
  p.unsubscribe('pjs-global');
  await sleep(200);
  await api.trigger('pjs-global', 'e2', { a: 2 });
  await sleep(300);
  assert.equal(seen.length, 1);
});
