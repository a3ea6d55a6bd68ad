'use strict';
// Webhooks (PROTOCOL.md §13): real requests from hush to a node HTTP receiver, verified and read
// by the official Pusher Node SDK (pusher 5.3.4: pusher.webhook(request).isValid(), getEvents()).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { startServer, MAIN_APP, HOST } = require('../lib/server');
const { RawClient } = require('../lib/ws-client');
const { privateAuth, presenceAuth } = require('../lib/auth');
const { sdk, cleanupClients } = require('../lib/clients');

const WAIT_MS = 15000;

/** An HTTP receiver that records { headers, rawBody } of every POST and answers 200. */
function receiver() {
  const requests = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ headers: req.headers, rawBody: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200).end('ok');
      for (const w of waiters.splice(0)) w();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, HOST, () => {
      resolve({
        url: `http://${HOST}:${server.address().port}/hooks`,
        requests,
        /** Waits until `pred(requests)` holds. */
        async until(pred, what) {
          const deadline = Date.now() + WAIT_MS;
          while (!pred(requests)) {
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(requests.map((r) => r.rawBody))}`);
            await new Promise((r) => { const t = setTimeout(r, Math.min(left, 200)); waiters.push(() => { clearTimeout(t); r(); }); });
          }
        },
        close: () => new Promise((r) => server.close(r)),
      });
    });
  });
}

let srv;
let recv;
let pusher;
const APP = { ...MAIN_APP, client_events: true };

before(async () => {
  recv = await receiver();
  // buildConfig has no arrays of tables: write the whole file here.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-compat-hooks-'));
  const config = path.join(dir, 'hush.toml');
  fs.writeFileSync(config, [
    `[server]\nhost = "${HOST}"\nshutdown_timeout = 3\ndata_dir = ${JSON.stringify(path.join(dir, 'data'))}`,
    '[webhooks]\nbatch_window_ms = 10\nvacate_delay_ms = 200\nbackoff_base_ms = 100',
    `[apps.main]\nid = "${APP.id}"\nkey = "${APP.key}"\nsecret = "${APP.secret}"\nclient_events = true`,
    `[[apps.main.webhooks]]\nurl = "${recv.url}"`,
  ].join('\n\n') + '\n');
  srv = await startServer({ noConfig: true, args: ['--config', config] });
  pusher = sdk(srv, APP);
});

after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
  if (recv) await recv.close();
});

/** All events of the valid webhooks received so far, as the SDK reads them. */
function sdkEvents() {
  const out = [];
  for (const r of recv.requests) {
    const hook = pusher.webhook(r);
    assert.equal(hook.isValid(), true, `invalid webhook: ${JSON.stringify(r)}`);
    assert.ok(hook.getTime() instanceof Date && !Number.isNaN(hook.getTime().getTime()));
    out.push(...hook.getEvents());
  }
  return out;
}

const has = (events, want) => events.some((e) => JSON.stringify(e) === JSON.stringify(want));

test('the Pusher SDK verifies hush webhooks and reads every event', async () => {
  const a = await RawClient.open(srv.wsUrl(APP.key));
  const b = await RawClient.open(srv.wsUrl(APP.key));
  for (const c of [a, b]) {
    const r = await c.subscribe('private-room', { auth: privateAuth(APP, c.socketId, 'private-room') });
    assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  }
  const pres = await a.subscribe('presence-lobby', presenceAuth(APP, a.socketId, 'presence-lobby', { user_id: 'u-1', user_info: { n: 1 } }));
  assert.equal(pres.event, 'pusher_internal:subscription_succeeded', pres.raw);
  a.send({ event: 'client-typing', channel: 'private-room', data: { x: 1 } });
  await b.next('client-typing');
  a.send({ event: 'client-hello', channel: 'presence-lobby', data: 'hi' });
  a.close();

  const wanted = [
    { name: 'channel_occupied', channel: 'private-room' },
    { name: 'subscription_count', channel: 'private-room', subscription_count: 2 },
    { name: 'channel_occupied', channel: 'presence-lobby' },
    { name: 'member_added', channel: 'presence-lobby', user_id: 'u-1' },
    { name: 'client_event', channel: 'private-room', event: 'client-typing', data: '{"x":1}', socket_id: a.socketId },
    { name: 'client_event', channel: 'presence-lobby', event: 'client-hello', data: 'hi', socket_id: a.socketId, user_id: 'u-1' },
    { name: 'member_removed', channel: 'presence-lobby', user_id: 'u-1' },
    { name: 'channel_vacated', channel: 'presence-lobby' },
    { name: 'subscription_count', channel: 'private-room', subscription_count: 1 },
  ];
  await recv.until(() => wanted.every((w) => has(sdkEvents(), w)), 'all events');
  for (const r of recv.requests) {
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-pusher-key'], APP.key);
    assert.match(r.headers['x-pusher-signature'], /^[0-9a-f]{64}$/);
  }
  b.close();
  await recv.until(() => has(sdkEvents(), { name: 'channel_vacated', channel: 'private-room' }), 'private-room vacated');
});

test('a tampered body or another secret does not verify', async () => {
  const r = recv.requests[0];
  assert.ok(r, 'a webhook was received');
  const tampered = { headers: r.headers, rawBody: r.rawBody.replace('channel', 'chAnnel') };
  assert.equal(pusher.webhook(tampered).isValid(), false);
  const other = sdk(srv, { ...APP, secret: 'not-the-secret' });
  assert.equal(other.webhook(r).isValid(), false);
});
