'use strict';
// docs/MIGRATING.md, tried as a user would: the variables a Laravel app already has (Reverb's
// REVERB_* / VITE_REVERB_*, soketi's SOKETI_DEFAULT_APP_*) mapped to HUSH_* variables as the
// guide says, hush started on those variables alone (no file), Echo's `reverb` broadcaster
// configured exactly as Laravel's generated resources/js/echo.js does, the backend publishing
// with the Pusher SDK options Laravel's `reverb` connection uses, and whispers, which need
// `client_events = true`.

const { test, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../lib/server');
const { sleep } = require('../lib/ws-client');
const { PusherSDK, PusherJS, loadEcho, waitState, cleanupClients, Collector } = require('../lib/clients');

const servers = [];
const echos = [];
function closeEchos() {
  for (const e of echos.splice(0)) e.disconnect();
  cleanupClients();
}
after(async () => {
  closeEchos();
  for (const s of servers) await s.stop();
});
afterEach(() => closeEchos());

/** The Reverb part of a Laravel .env (`php artisan install:broadcasting --reverb`). */
const REVERB = {
  REVERB_APP_ID: '412001',
  REVERB_APP_KEY: 'kqrmv0hus4tmxn2yw0bi',
  REVERB_APP_SECRET: '0bpzdq7uvw0tk1wb5ljq',
};

/** MIGRATING.md "From Laravel Reverb": the same credentials as HUSH_* variables. */
function hushFromReverb(env, { clientEvents = true } = {}) {
  const out = {
    HUSH_APPS__MAIN__ID: env.REVERB_APP_ID,
    HUSH_APPS__MAIN__KEY: env.REVERB_APP_KEY,
    HUSH_APPS__MAIN__SECRET: env.REVERB_APP_SECRET,
  };
  if (clientEvents) out.HUSH_APPS__MAIN__CLIENT_EVENTS = 'true';
  return out;
}

/** resources/js/echo.js as Laravel generates it for Reverb, with VITE_REVERB_* filled in. */
async function reverbEcho(vite, authorizer) {
  const Echo = await loadEcho();
  const e = new Echo({
    broadcaster: 'reverb',
    Pusher: PusherJS,
    key: vite.VITE_REVERB_APP_KEY,
    wsHost: vite.VITE_REVERB_HOST,
    wsPort: vite.VITE_REVERB_PORT ?? 80,
    wssPort: vite.VITE_REVERB_PORT ?? 443,
    forceTLS: (vite.VITE_REVERB_SCHEME ?? 'https') === 'https',
    enabledTransports: ['ws', 'wss'],
    authorizer,
  });
  echos.push(e);
  return e;
}

/** config/broadcasting.php's `reverb` connection, as the Pusher SDK options it becomes. */
function laravelBackend(env) {
  return new PusherSDK({
    appId: env.REVERB_APP_ID,
    key: env.REVERB_APP_KEY,
    secret: env.REVERB_APP_SECRET,
    host: env.REVERB_HOST,
    port: String(env.REVERB_PORT),
    useTLS: env.REVERB_SCHEME === 'https',
  });
}

async function reverbSetup({ clientEvents }) {
  const srv = await startServer({ noConfig: true, env: hushFromReverb(REVERB, { clientEvents }) });
  servers.push(srv);
  const env = { ...REVERB, REVERB_HOST: '127.0.0.1', REVERB_PORT: srv.port, REVERB_SCHEME: 'http' };
  const vite = {
    VITE_REVERB_APP_KEY: env.REVERB_APP_KEY,
    VITE_REVERB_HOST: env.REVERB_HOST,
    VITE_REVERB_PORT: env.REVERB_PORT,
    VITE_REVERB_SCHEME: env.REVERB_SCHEME,
  };
  const backend = laravelBackend(env);
  // What Laravel's /broadcasting/auth answers for an authorized user.
  const authorizer = (channel) => ({
    authorize: (socketId, cb) => {
      try { cb(null, backend.authorizeChannel(socketId, channel.name)); } catch (e) { cb(e, null); }
    },
  });
  return { srv, vite, backend, authorizer };
}

function subscribed(channel, timeout = 3000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('Echo subscribed() not called')), timeout);
    channel.subscribed(() => { clearTimeout(t); resolve(); });
  });
}

test('Reverb app moved to hush: env vars only, Echo reverb broadcaster, backend broadcast, whisper', async () => {
  const { vite, backend, authorizer } = await reverbSetup({ clientEvents: true });
  const a = await reverbEcho(vite, authorizer);
  const b = await reverbEcho(vite, authorizer);
  await waitState(a.connector.pusher, 'connected');
  const got = new Collector();
  const heard = new Collector();
  const chA = a.private('orders.7').listen('.OrderShipped', got.push);
  const chB = b.private('orders.7').listenForWhisper('typing', heard.push);
  await Promise.all([subscribed(chA), subscribed(chB)]);
  // broadcast(new OrderShipped($order)) from Laravel: the backend's publish.
  await backend.trigger('private-orders.7', 'OrderShipped', { id: 7 });
  assert.deepEqual(await got.waitFor(1), { id: 7 });
  chA.whisper('typing', { name: 'A' });
  assert.deepEqual(await heard.waitFor(1), { name: 'A' });
});

test('Without client_events = true a whisper goes nowhere (MIGRATING.md: set it)', async () => {
  const { vite, authorizer } = await reverbSetup({ clientEvents: false });
  const a = await reverbEcho(vite, authorizer);
  const b = await reverbEcho(vite, authorizer);
  const heard = new Collector();
  const chA = a.private('chat.1');
  const chB = b.private('chat.1').listenForWhisper('typing', heard.push);
  await Promise.all([subscribed(chA), subscribed(chB)]);
  chA.whisper('typing', { name: 'A' });
  await sleep(500);
  assert.equal(heard.items.length, 0, 'a whisper was relayed without client_events');
});

test('soketi variables mapped as MIGRATING.md says: numeric id, limits, client messages', async () => {
  const soketi = {
    SOKETI_DEFAULT_APP_ID: '1001',
    SOKETI_DEFAULT_APP_KEY: 'soketi-key-1001',
    SOKETI_DEFAULT_APP_SECRET: 'soketi-secret-1001',
    SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true',
    SOKETI_DEFAULT_APP_MAX_CONNS: '100',
    SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: '2',
    SOKETI_DEFAULT_APP_MAX_READ_REQ_PER_SEC: '50',
  };
  const srv = await startServer({
    noConfig: true,
    env: {
      HUSH_APPS__MAIN__ID: soketi.SOKETI_DEFAULT_APP_ID,
      HUSH_APPS__MAIN__KEY: soketi.SOKETI_DEFAULT_APP_KEY,
      HUSH_APPS__MAIN__SECRET: soketi.SOKETI_DEFAULT_APP_SECRET,
      HUSH_APPS__MAIN__CLIENT_EVENTS: soketi.SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES,
      HUSH_APPS__MAIN__MAX_CONNECTIONS: soketi.SOKETI_DEFAULT_APP_MAX_CONNS,
      HUSH_APPS__MAIN__MAX_PUBLISHES_PER_SECOND: soketi.SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC,
      HUSH_APPS__MAIN__MAX_READ_REQUESTS_PER_SECOND: soketi.SOKETI_DEFAULT_APP_MAX_READ_REQ_PER_SEC,
    },
  });
  servers.push(srv);
  const api = new PusherSDK({
    appId: soketi.SOKETI_DEFAULT_APP_ID,
    key: soketi.SOKETI_DEFAULT_APP_KEY,
    secret: soketi.SOKETI_DEFAULT_APP_SECRET,
    host: '127.0.0.1',
    port: String(srv.port),
    useTLS: false,
  });
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    try {
      statuses.push((await api.trigger('news', 'e', { i })).status);
    } catch (e) {
      statuses.push(e.status);
    }
  }
  assert.deepEqual(statuses, [200, 200, 429]);
  const res = await api.get({ path: '/channels' });
  assert.equal(res.status, 200, 'reads have their own allowance');
});
