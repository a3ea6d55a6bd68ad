'use strict';
// Graceful shutdown (PROTOCOL.md §1.4 "server draining for restart" → 4200, §1.5).
// One node's shutdown: the cluster run keeps these to one node (`single`);
// a node of a cluster killed or stopped is test/cluster.test.js.

const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { pusherClient, waitState, cleanupClients } = require('../lib/clients');

let srv;
afterEach(async () => {
  cleanupClients();
  if (srv) await srv.stop({ signal: 'SIGKILL' });
  srv = null;
});

test('SIGTERM: connected clients are closed with 4200 and the server exits 0', async () => {
  srv = await startServer({ single: true, server: { shutdown_timeout: 3 }, apps: { main: { ...MAIN_APP } } });
  const clients = await Promise.all([0, 1, 2].map(() => RawClient.open(srv.wsUrl(MAIN_APP.key))));
  await clients[0].subscribe('news', { auth: '' });
  srv.child.kill('SIGTERM');
  for (const c of clients) {
    const close = await c.waitClose(5000);
    assert.equal(close.code, 4200, `close reason "${close.reason}"`);
    const err = c.take('pusher:error');
    if (err) assert.equal(err.data.code, 4200, err.raw);
  }
  let timer;
  const status = await Promise.race([
    srv.exited,
    new Promise((r) => { timer = setTimeout(() => r('timeout'), 6000); }),
  ]);
  clearTimeout(timer);
  assert.notEqual(status, 'timeout', 'server did not exit within shutdown_timeout + 3 s');
  assert.equal(status.code, 0, `exit ${JSON.stringify(status)}`);
});

test('SIGTERM with no clients: exits 0 promptly', async () => {
  srv = await startServer({ single: true, server: { shutdown_timeout: 3 }, apps: { main: { ...MAIN_APP } } });
  await sleep(300);
  const t0 = Date.now();
  const status = await srv.stop({ signal: 'SIGTERM', timeoutMs: 5000 });
  assert.equal(status.code, 0, JSON.stringify(status));
  assert.ok(Date.now() - t0 < 4000);
});

test('SIGTERM right after the "hush listening on" line is handled gracefully (exit 0)', async () => {
  srv = await startServer({ single: true, server: { shutdown_timeout: 3 }, apps: { main: { ...MAIN_APP } } });
  const status = await srv.stop({ signal: 'SIGTERM', timeoutMs: 5000 });
  assert.equal(status.code, 0, `the ready line was printed before the SIGTERM handler was installed: ${JSON.stringify(status)}`);
});

test('SIGTERM: pusher-js treats 4200 as "reconnect now" (leaves connected, tries again)', async () => {
  srv = await startServer({ single: true, server: { shutdown_timeout: 3 }, apps: { main: { ...MAIN_APP } } });
  const p = pusherClient(srv, MAIN_APP);
  await waitState(p, 'connected');
  const states = [];
  p.connection.bind('state_change', ({ current }) => states.push(current));
  srv.child.kill('SIGTERM');
  await waitState(p, 'connecting', 5000);
  assert.ok(states.includes('connecting'), states.join(' → '));
  assert.ok(!states.includes('disconnected'), `4200 must not be a refusal: ${states.join(' → ')}`);
  p.disconnect();
});
