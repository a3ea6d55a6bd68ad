'use strict';
// Server-side keep-alive (PROTOCOL.md §1.6): server pings after activity_timeout + ping_grace of
// client silence, closes 4201 when nothing comes back within pong_timeout.
// Config: activity_timeout=1, ping_grace=0, pong_timeout=1.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { pusherClient, waitState, cleanupClients } = require('../lib/clients');

let srv;
before(async () => {
  srv = await startServer({
    server: { activity_timeout: 1, ping_grace: 0, pong_timeout: 1 },
    apps: { main: { ...MAIN_APP } },
  });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

test('connection_established advertises the configured activity_timeout', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  assert.equal(c.activityTimeout, 1);
});

test('silent client: server sends pusher:ping with data "{}", then pusher:error 4201 and close 4201', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const t0 = Date.now();
  const ping = await c.next('pusher:ping', { timeout: 4000 });
  assert.equal(ping.data, '{}', `server ping data must be the string "{}": ${ping.raw}`);
  assert.ok(Date.now() - t0 >= 500, 'server must not ping before activity_timeout');
  const err = await c.next('pusher:error', { timeout: 4000, allowClosed: true });
  assert.equal(err.data.code, 4201, err.raw);
  const close = await c.waitClose(4000);
  assert.equal(close.code, 4201);
});

test('client answering every server ping with pusher:pong stays connected', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  let pings = 0;
  c.ws.on('message', (d) => {
    try {
      if (JSON.parse(d.toString()).event === 'pusher:ping') {
        pings++;
        c.send({ event: 'pusher:pong', data: {} });
      }
    } catch { /* ignore */ }
  });
  await sleep(4500);
  assert.ok(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)}`);
  assert.ok(pings >= 1, 'server pinged at least once');
  assert.equal(c.take('pusher:error'), undefined);
  await c.ping();
});

test('pong with data as the string "{}" (or no data) also counts', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  let n = 0;
  c.ws.on('message', (d) => {
    try {
      if (JSON.parse(d.toString()).event === 'pusher:ping') {
        c.sendText(n++ % 2 ? '{"event":"pusher:pong"}' : '{"event":"pusher:pong","data":"{}"}');
      }
    } catch { /* ignore */ }
  });
  await sleep(4000);
  assert.ok(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)}`);
});

test('a client that keeps talking is never pinged (any frame counts as activity)', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const timer = setInterval(() => { if (c.isOpen) c.send({ event: 'pusher:ping', data: {} }); }, 300);
  try {
    await sleep(3000);
  } finally {
    clearInterval(timer);
  }
  assert.ok(c.isOpen);
  assert.equal(c.take('pusher:ping'), undefined, 'server pinged an active client');
});

test('answering a server ping with any other frame also keeps the connection', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  c.ws.on('message', (d) => {
    try {
      if (JSON.parse(d.toString()).event === 'pusher:ping') c.send({ event: 'pusher:ping', data: {} });
    } catch { /* ignore */ }
  });
  await sleep(4000);
  assert.ok(c.isOpen, `closed: ${JSON.stringify(c.closeInfo)}`);
});

test('pusher-js stays connected across several activity timeouts', async () => {
  const p = pusherClient(srv, MAIN_APP);
  await waitState(p, 'connected');
  const socketId = p.connection.socket_id;
  const changes = [];
  p.connection.bind('state_change', (s) => changes.push(`${s.previous}→${s.current}`));
  await sleep(4500);
  assert.equal(p.connection.state, 'connected');
  assert.deepEqual(changes, [], 'no reconnects');
  assert.equal(p.connection.socket_id, socketId);
});
