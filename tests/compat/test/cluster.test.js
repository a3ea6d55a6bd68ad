'use strict';
// A cluster of hush processes on one Redis and one PostgreSQL (run with
// HUSH_COMPAT_NODES=3; skipped on one node): what only a cluster can get
// wrong, with real processes. Presence across nodes, webhooks once per
// cluster (counted at a receiver), and `kill -9` of a node: its members
// leave every other node's lists and `member_removed` arrives once, within
// the lease.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startServer, clusterSize, MAIN_APP, HOST } = require('../lib/server');
const { RawClient } = require('../lib/ws-client');
const { presenceAuth } = require('../lib/auth');
const { sdk, cleanupClients } = require('../lib/clients');

const CLUSTER = clusterSize() > 1;
/** The lease the cluster runs with (seconds), short for the test. */
const LEASE_S = 3;

/** A webhook receiver that keeps every event of every request. */
function receiver() {
  const events = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        for (const e of JSON.parse(Buffer.concat(chunks).toString('utf8')).events) events.push(e);
      } catch { /* counted as nothing */ }
      res.writeHead(200).end('ok');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, HOST, () => resolve({
      url: `http://${HOST}:${server.address().port}/hooks`,
      events,
      count: (pred) => events.filter(pred).length,
      close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }),
    }));
  });
}

async function eventually(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let srv;
let recv;

before(async () => {
  if (!CLUSTER) return;
  recv = await receiver();
  srv = await startServer({
    sections: {
      webhooks: { batch_window_ms: 10, backoff_base_ms: 100 },
      cluster: { lease: LEASE_S },
    },
    extraToml: `[[apps.main.webhooks]]\nurl = "${recv.url}"`,
  });
});

after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
  if (recv) await recv.close();
});

const on = (i) => RawClient.open(srv.nodes[i].wsUrl(MAIN_APP.key));

async function join(c, channel, userId) {
  const channelData = { user_id: userId, user_info: { name: userId } };
  return c.subscribe(channel, presenceAuth(MAIN_APP, c.socketId, channel, channelData));
}

test('presence across nodes, webhooks once per cluster, and a node killed with -9', { skip: !CLUSTER && 'one node (HUSH_COMPAT_NODES unset)' }, async () => {
  const ch = 'presence-cluster-kill';
  const a = await on(1);
  const b = await on(2);
  await join(a, ch, 'alice');
  // A join travels to the other nodes over the bus (well under a
  // millisecond on loopback); Bob joins once node 1's API lists Alice.
  const api = sdk(srv, MAIN_APP);
  const listed = async () => (await (await api.get({ path: `/channels/${ch}/users` })).json()).users.map((u) => u.id);
  for (let i = 0; i < 100 && !(await listed()).includes('alice'); i += 1) await new Promise((r) => setTimeout(r, 20));
  const ok = await join(b, ch, 'bob');
  // Bob on node 3 sees Alice of node 2 in the member list.
  const ids = JSON.parse(ok.data).presence.ids.slice().sort();
  assert.deepEqual(ids, ['alice', 'bob']);
  const added = await a.next('pusher_internal:member_added', { channel: ch });
  assert.equal(JSON.parse(added.data).user_id, 'bob');
  // The API of node 1 answers for the whole cluster.
  const users = await (await api.get({ path: `/channels/${ch}/users` })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['alice', 'bob']);

  const of = (name, user) => (e) => e.name === name && e.channel === ch && (user === undefined || e.user_id === user);
  await eventually(() => recv.count(of('member_added', 'bob')) >= 1 && recv.count(of('channel_occupied')) >= 1, 10000, 'occupied and member_added');

  // kill -9 node 3: no goodbye, only the lease tells the others.
  const killed = Date.now();
  await srv.nodes[2].stop({ signal: 'SIGKILL' });
  const removed = await a.next('pusher_internal:member_removed', { channel: ch, timeout: (LEASE_S + 5) * 1000 });
  assert.equal(JSON.parse(removed.data).user_id, 'bob');
  const took = Date.now() - killed;
  assert.ok(took <= (LEASE_S + 2) * 1000, `member_removed after ${took} ms, lease ${LEASE_S} s`);
  await eventually(() => recv.count(of('member_removed', 'bob')) >= 1, 10000, 'member_removed webhook');
  const users2 = await (await api.get({ path: `/channels/${ch}/users` })).json();
  assert.deepEqual(users2.users.map((u) => u.id), ['alice']);

  // Alice leaves: the channel is vacated (first joined on node 2 and 3, last left on node 2).
  a.unsubscribe(ch);
  await eventually(() => recv.count(of('channel_vacated')) >= 1, 10000, 'channel_vacated');
  // Late duplicates would come within a few batch windows.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(recv.count(of('channel_occupied')), 1, 'channel_occupied once');
  assert.equal(recv.count(of('member_added', 'alice')), 1, 'member_added alice once');
  assert.equal(recv.count(of('member_added', 'bob')), 1, 'member_added bob once');
  assert.equal(recv.count(of('member_removed', 'bob')), 1, 'member_removed bob once');
  assert.equal(recv.count(of('member_removed', 'alice')), 1, 'member_removed alice once');
  assert.equal(recv.count(of('channel_vacated')), 1, 'channel_vacated once');
});
