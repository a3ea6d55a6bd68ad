'use strict';
// TLS: pusher-js (wss) and the Pusher Node SDK (https) against hush serving a self-signed
// certificate that the client process trusts (NODE_EXTRA_CA_CERTS). The certificate is made
// with the openssl command-line tool; without it the test is skipped (the Rust tests in
// crates/hush-server/tests/ops.rs cover TLS with a generated certificate regardless).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, MAIN_APP } = require('../lib/server');

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
let srv;
after(async () => {
  if (srv) await srv.stop();
});

function makeCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { cert, key };
}

test('pusher-js over wss and the Node SDK over https, trusting a self-signed certificate', { skip: !hasOpenssl && 'openssl not installed' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-compat-tls-'));
  const { cert, key } = makeCert(dir);
  srv = await startServer({
    env: { HUSH_SERVER__TLS__CERT_FILE: cert, HUSH_SERVER__TLS__KEY_FILE: key },
  });
  for (let i = 0; i < 50 && !/TLS on: wss:\/\//.test(srv.stdoutText()); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(srv.stdoutText(), /TLS on: wss:\/\//);

  const child = spawn(process.execPath, [path.join(__dirname, '..', 'lib', 'tls-client.js')], {
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: cert,
      HUSH_TLS_HOST: srv.host,
      HUSH_TLS_PORT: String(srv.port),
      HUSH_TLS_APP: JSON.stringify(MAIN_APP),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, `client failed: ${out}\n${err}`);
  const res = JSON.parse(out.trim().split('\n').pop());
  assert.equal(res.ok, true);
  assert.deepEqual(res.data, { hello: 'over tls' });
  assert.match(res.socketId, /^\d+\.\d+$/);

  // Without the certificate trusted, pusher-js must not get through.
  const untrusted = spawnSync(process.execPath, [path.join(__dirname, '..', 'lib', 'tls-client.js')], {
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: '',
      HUSH_TLS_TIMEOUT_MS: '4000',
      HUSH_TLS_HOST: srv.host,
      HUSH_TLS_PORT: String(srv.port),
      HUSH_TLS_APP: JSON.stringify(MAIN_APP),
    },
    encoding: 'utf8',
    timeout: 30000,
  });
  assert.notEqual(untrusted.status, 0, untrusted.stdout);
  assert.match(untrusted.stdout, /"ok":false/);
  fs.rmSync(dir, { recursive: true, force: true });
});
