'use strict';
// Configuration surface: --print-config, environment overrides, development app.

const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, runHush, buildConfig, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { cleanupClients } = require('../lib/clients');
const { privateAuth } = require('../lib/auth');

let srv;
afterEach(async () => {
  cleanupClients();
  if (srv) await srv.stop();
  srv = null;
});

test('hush serve --print-config prints the effective TOML with secrets masked and exits 0', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-compat-'));
  const file = path.join(dir, 'hush.toml');
  fs.writeFileSync(file, buildConfig({ server: { activity_timeout: 77 }, apps: { main: { ...MAIN_APP } } }));
  const r = await runHush(['serve', '--config', file, '--print-config'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\[server\]/);
  assert.match(r.stdout, /activity_timeout\s*=\s*77/);
  assert.ok(r.stdout.includes(MAIN_APP.key), 'app key shown');
  assert.ok(!r.stdout.includes(MAIN_APP.secret), 'secret must be masked');
  assert.match(r.stdout, /\*\*\*/);
});

test('environment variables override the file (HUSH_SERVER__ACTIVITY_TIMEOUT)', async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP } }, env: { HUSH_SERVER__ACTIVITY_TIMEOUT: '42' } });
  const c = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  assert.equal(c.activityTimeout, 42);
});

test('environment variables override app settings (HUSH_APPS__MAIN__CLIENT_EVENTS=true)', async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP, client_events: false } }, env: { HUSH_APPS__MAIN__CLIENT_EVENTS: 'true' } });
  const a = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  const b = await RawClient.open(srv.wsUrl(MAIN_APP.key));
  for (const c of [a, b]) await c.subscribe('private-env', { auth: privateAuth(MAIN_APP, c.socketId, 'private-env') });
  a.send({ event: 'client-env', channel: 'private-env', data: {} });
  await b.next('client-env');
});

test('no config: development app app-id / app-key / app-secret with client events on', async () => {
  srv = await startServer({ noConfig: true });
  const deadline = Date.now() + 1500;
  while (!(srv.stdoutText() + srv.stderrText()).includes('app-key') && Date.now() < deadline) await sleep(50);
  const out = srv.stdoutText() + srv.stderrText();
  assert.ok(out.includes('app-key') && out.includes('app-secret'), `dev credentials printed:\n${out}`);
  const dev = { id: 'app-id', key: 'app-key', secret: 'app-secret' };
  const a = await RawClient.open(srv.wsUrl(dev.key));
  const b = await RawClient.open(srv.wsUrl(dev.key));
  for (const c of [a, b]) {
    const r = await c.subscribe('private-dev', { auth: privateAuth(dev, c.socketId, 'private-dev') });
    assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  }
  a.send({ event: 'client-dev', channel: 'private-dev', data: { ok: true } });
  assert.deepEqual((await b.next('client-dev')).data, { ok: true });
});
