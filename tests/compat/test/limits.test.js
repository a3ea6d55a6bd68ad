'use strict';
// Node-wide limits (PROTOCOL.md §1.4, §1.7): node capacity → 4100; configurable max_message_bytes.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { cleanupClients, sdk } = require('../lib/clients');

const OTHER = { id: '9', key: 'limits-other-key', secret: 'limits-other-secret' };

let srv;
before(async () => {
  // Limits of one node: the cluster run keeps this file to one node.
  srv = await startServer({
    single: true,
    server: { max_connections: 2, max_message_bytes: 1024, outgoing_queue_frames: 16 },
    apps: { main: { ...MAIN_APP }, other: OTHER },
  });
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(async () => {
  cleanupClients();
  await sleep(150); // let the server account for the closed sockets
});

test('node capacity (server.max_connections) → pusher:error 4100 then close 4100, across apps', async () => {
  const a = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const b = await RawClient.open(srv.wsUrl(OTHER.key));
  const c = await RawClient.connect(srv.wsUrl(MAIN_APP.key));
  const err = await c.next('pusher:error', { allowClosed: true });
  assert.equal(err.data.code, 4100, err.raw);
  assert.equal((await c.waitClose()).code, 4100);
  await a.ping();
  await b.ping();
});

test('capacity frees again when a connection leaves', async () => {
  const a = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  await RawClient.open(srv.wsUrl(MAIN_APP.key));
  a.close();
  await a.waitClose();
  let ok = false;
  for (let i = 0; i < 20 && !ok; i++) {
    const c = await RawClient.connect(srv.wsUrl(MAIN_APP.key));
    const first = await c.next((m) => m.event === 'pusher:connection_established' || m.event === 'pusher:error', { allowClosed: true });
    ok = first.event === 'pusher:connection_established';
    if (!ok) await sleep(100);
  }
  assert.ok(ok);
});

test('configured max_message_bytes: 1000-byte frame accepted, 2000-byte frame closes 1009', async () => {
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  c.send({ event: 'pusher:ping', data: { pad: 'x'.repeat(900) } });
  await c.next('pusher:pong');
  c.send({ event: 'pusher:ping', data: { pad: 'x'.repeat(2000) } });
  const close = await c.waitClose();
  assert.equal(close.code, 1009);
});

test('slow consumer: a connection that stops reading is closed 4100; a reading client gets everything', async () => {
  const api = sdk(srv, MAIN_APP);
  const channels = Array.from({ length: 100 }, (_, i) => `flood-${i}`);
  const slow = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const fast = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  for (const ch of channels) slow.send({ event: 'pusher:subscribe', data: { channel: ch, auth: '' } });
  fast.send({ event: 'pusher:subscribe', data: { channel: 'flood-0', auth: '' } });
  for (const ch of channels) await slow.next('pusher_internal:subscription_succeeded', { channel: ch });
  await fast.next('pusher_internal:subscription_succeeded', { channel: 'flood-0' });
  slow.ws._socket.pause(); // stop reading from TCP; the server's writes back up
  const data = 'y'.repeat(10000);
  const rounds = 60; // 60 × 100 channels × ~10 KB ≈ 60 MB towards the slow socket
  let fastCount = 0;
  fast.ws.on('message', () => { fastCount++; });
  for (let i = 0; i < rounds; i++) {
    await api.trigger(channels, 'flood', data);
  }
  slow.ws._socket.resume();
  const close = await slow.waitClose(15000);
  assert.equal(close.code, 4100, `close reason "${close.reason}"`);
  const deadline = Date.now() + 5000;
  while (fastCount < rounds && Date.now() < deadline) await sleep(50);
  assert.equal(fastCount, rounds, 'the reading client received every event');
  await fast.ping();
});
