'use strict';
// WebSocket endpoint: handshake, refusals, ping/pong, malformed input (PROTOCOL.md §1–§2, §4.1).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { pusherClient, waitState, cleanupClients } = require('../lib/clients');

const SOCKET_ID = /^[0-9]+\.[0-9]+$/;
const DISABLED = { id: '4', key: 'disabled-app-key-0001', secret: 'disabled-secret', enabled: false };
const QUOTA = { id: '5', key: 'quota-app-key-0001', secret: 'quota-secret', max_connections: 2 };

let srv;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP }, off: DISABLED, quota: QUOTA } });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

/** Connects and expects `pusher:error` {code} followed by a close with the same code (§1.4). */
async function expectRefusal(url, code) {
  const c = await RawClient.connect(url);
  const err = await c.next('pusher:error', { allowClosed: true });
  assert.equal(typeof err.data, 'object', `pusher:error data must be an object: ${err.raw}`);
  assert.equal(err.data.code, code, err.raw);
  assert.equal(typeof err.data.message, 'string');
  assert.ok(!c.take('pusher:connection_established'), 'no connection_established before a refusal');
  const close = await c.waitClose();
  assert.equal(close.code, code, `close code (reason "${close.reason}")`);
  return { err, close };
}

/** For paths that are not /app/{key}: HTTP 404 before the upgrade, or pusher:error + close 4005 (§1.3, §1.4). */
async function expectBadPath(path) {
  let c;
  try {
    c = await RawClient.connect(srv.wsUrl(null, { path }));
  } catch (e) {
    assert.equal(e.status, 404, `path ${path}: ${e.message}`);
    return;
  }
  const err = await c.next('pusher:error', { allowClosed: true });
  assert.equal(err.data.code, 4005, err.raw);
  assert.equal((await c.waitClose()).code, 4005);
}

test('connection_established is the first frame; data is a JSON string with socket_id and activity_timeout', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const first = c.all[0];
  assert.equal(first.event, 'pusher:connection_established');
  assert.equal(typeof first.data, 'string', 'data must be a JSON-encoded string (§1.3)');
  const d = JSON.parse(first.data);
  assert.match(d.socket_id, SOCKET_ID);
  assert.equal(d.activity_timeout, 120);
  assert.equal(first.channel, undefined);
  // Exactly one frame, first.
  await sleep(100);
  assert.equal(c.all.length, 1, `only connection_established expected, got ${c.all.map((m) => m.raw).join(' ')}`);
});

test('socket ids are unique per connection and are two u64-range integers', async () => {
  const ids = new Set();
  const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.open(srv.wsUrl(MAIN_APP.key))));
  for (const c of clients) {
    assert.match(c.socketId, SOCKET_ID);
    for (const part of c.socketId.split('.')) {
      assert.ok(part.length <= 20, `socket id part too long: ${c.socketId}`);
      assert.ok(BigInt(part) <= 18446744073709551615n);
    }
    ids.add(c.socketId);
  }
  assert.equal(ids.size, clients.length);
});

for (const protocol of ['5', '6', '7']) {
  test(`protocol=${protocol} is accepted`, async () => {
    const c = await RawClient.open(srv.wsUrl(MAIN_APP.key, { query: `protocol=${protocol}&client=js&version=8.6.0` }));
    assert.match(c.socketId, SOCKET_ID);
  });
}

test('client, version, flash and unknown query parameters are ignored', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key, { query: 'protocol=7&client=java-client&version=2.4.2&flash=false&foo=bar&x=' }));
  assert.match(c.socketId, SOCKET_ID);
  await c.ping();
});

test('unknown app key → pusher:error 4001 then close 4001 (after the upgrade)', async () => {
  await expectRefusal(srv.wsUrl('no-such-key'), 4001);
});

test('disabled app → pusher:error 4003 then close 4003', async () => {
  await expectRefusal(srv.wsUrl(DISABLED.key), 4003);
});

test('protocol not an integer → 4006', async () => {
  await expectRefusal(srv.wsUrl(MAIN_APP.key, { query: 'protocol=abc&client=js&version=8.6.0' }), 4006);
});

test('protocol=7.0 (not an integer) → 4006', async () => {
  await expectRefusal(srv.wsUrl(MAIN_APP.key, { query: 'protocol=7.0' }), 4006);
});

for (const protocol of ['4', '8', '1', '3', '99']) {
  test(`unsupported protocol=${protocol} → 4007`, async () => {
    await expectRefusal(srv.wsUrl(MAIN_APP.key, { query: `protocol=${protocol}&client=js&version=8.6.0` }), 4007);
  });
}

test('no protocol parameter → 4008', async () => {
  await expectRefusal(srv.wsUrl(MAIN_APP.key, { query: 'client=js&version=8.6.0' }), 4008);
});

test('no query string at all → 4008', async () => {
  await expectRefusal(srv.wsUrl(MAIN_APP.key, { query: '' }), 4008);
});

for (const path of ['/foo', '/app/', `/app/${MAIN_APP.key}/extra`, `/apps/${MAIN_APP.key}`]) {
  test(`path ${path} → HTTP 404 or 4005`, async () => {
    await expectBadPath(path);
  });
}

test('app connection quota → 4004; a slot frees when a client leaves', async () => {
  const a = await RawClient.open(srv.wsUrl(QUOTA.key));
  const b = await RawClient.open(srv.wsUrl(QUOTA.key));
  await expectRefusal(srv.wsUrl(QUOTA.key), 4004);
  // Other apps are unaffected by this app's quota.
  await RawClient.open(srv.wsUrl(MAIN_APP.key));
  a.close();
  await a.waitClose();
  // The server may need a moment to account for the close; retry briefly.
  let ok = null;
  for (let i = 0; i < 20 && !ok; i++) {
    const c = await RawClient.connect(srv.wsUrl(QUOTA.key));
    const first = await c.next((m) => m.event === 'pusher:connection_established' || m.event === 'pusher:error', { allowClosed: true });
    if (first.event === 'pusher:connection_established') ok = c;
    else await sleep(100);
  }
  assert.ok(ok, 'a new connection is accepted after one left');
  assert.ok(b.isOpen);
});

for (const [label, frame] of [
  ['data {} object', '{"event":"pusher:ping","data":{}}'],
  ['data "{}" string', '{"event":"pusher:ping","data":"{}"}'],
  ['no data', '{"event":"pusher:ping"}'],
]) {
  test(`pusher:ping (${label}) → pusher:pong with data "{}"`, async () => {
    const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
    c.sendText(frame);
    const pong = await c.next('pusher:pong');
    assert.equal(pong.data, '{}', `pong data must be the string "{}": ${pong.raw}`);
    assert.equal(pong.channel, undefined);
  });
}

test('several pings in a row → as many pongs', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  for (let i = 0; i < 5; i++) c.send({ event: 'pusher:ping', data: {} });
  for (let i = 0; i < 5; i++) await c.next('pusher:pong');
});

test('WebSocket protocol ping frames are answered with pong frames', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const got = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no pong frame')), 3000);
    c.ws.once('pong', (payload) => { clearTimeout(t); resolve(payload.toString()); });
  });
  c.ws.ping(Buffer.from('hello'));
  assert.equal(await got, 'hello');
});

for (const [label, text] of [
  ['malformed JSON', '{"event":"pusher:ping",'],
  ['not JSON at all', 'hello world'],
  ['JSON without event', '{"data":{}}'],
  ['event is not a string', '{"event":42,"data":{}}'],
  ['JSON array', '[1,2,3]'],
  ['JSON string', '"pusher:ping"'],
]) {
  test(`${label} → pusher:error with code null; connection kept`, async () => {
    const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
    c.sendText(text);
    const err = await c.next('pusher:error');
    assert.equal(typeof err.data, 'object', `pusher:error data must be an object: ${err.raw}`);
    assert.equal(err.data.code, null, err.raw);
    assert.equal(typeof err.data.message, 'string');
    await c.ping();
    assert.ok(c.isOpen);
  });
}

test('binary frame → pusher:error with code null; connection kept', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  c.sendBinary(Buffer.from('{"event":"pusher:ping","data":{}}'));
  const err = await c.next('pusher:error');
  assert.equal(err.data.code, null, err.raw);
  assert.equal(c.take('pusher:pong'), undefined, 'binary frame must not be parsed');
  await c.ping();
});

test('unknown pusher:* events are ignored silently', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  c.send({ event: 'pusher:does_not_exist', data: {} });
  c.send({ event: 'pusher_internal:subscription_succeeded', channel: 'x', data: '{}' });
  await c.ping();
  await c.nothing('pusher:error', 200);
  assert.ok(c.isOpen);
});

test('a pusher:* event with data as a JSON string is parsed once and handled (§3)', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  c.send({ event: 'pusher:subscribe', data: JSON.stringify({ channel: 'string-data-channel', auth: '' }) });
  const r = await c.subscriptionResult('string-data-channel');
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
});

test('a message just under max_message_bytes is accepted', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  c.send({ event: 'pusher:ping', data: { pad: 'x'.repeat(60000) } });
  await c.next('pusher:pong');
});

test('oversize message (> max_message_bytes) → close 1009; other clients unaffected', async () => {
  const other = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  c.send({ event: 'pusher:ping', data: { pad: 'x'.repeat(70000) } });
  const close = await c.waitClose();
  assert.equal(close.code, 1009, `close reason "${close.reason}"`);
  await other.ping();
  // And the server still accepts new connections.
  await (await RawClient.open(srv.wsUrl(MAIN_APP.key))).ping();
});

test('a client close with 1000 does not disturb other connections', async () => {
  const a = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const b = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  a.close(1000);
  await a.waitClose();
  b.ws.terminate();
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  await c.ping();
});

test('plain HTTP GET on an unknown path → 404', async () => {
  const res = await fetch(`${srv.httpBase()}/definitely/not/here`, { signal: AbortSignal.timeout(3000) });
  assert.equal(res.status, 404);
  await res.text();
});

test('pusher-js connects, reports the socket id, and disconnects cleanly', async () => {
  const p = pusherClient(srv, MAIN_APP);
  await waitState(p, 'connected');
  assert.match(p.connection.socket_id, SOCKET_ID);
  p.disconnect();
  await waitState(p, 'disconnected');
});

test('pusher-js with an unknown key stays disconnected (4001 = refused, no retry)', async () => {
  const p = pusherClient(srv, { key: 'unknown-key-for-pusher-js' });
  const states = [];
  const errors = [];
  p.connection.bind('state_change', ({ current }) => states.push(current));
  p.connection.bind('error', (e) => errors.push(e));
  await waitState(p, 'disconnected', 5000);
  await sleep(1500);
  assert.equal(p.connection.state, 'disconnected', `states: ${states.join(' → ')}`);
  assert.ok(states.filter((s) => s === 'connecting').length <= 1, `pusher-js retried: ${states.join(' → ')}`);
});
