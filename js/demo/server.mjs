// The clinic demo's backend: no framework, only node:http and the `pusher` Node SDK.
//
// It serves the pages, the built @hush/e2ee package and the two pusher-js endpoints an app
// backend answers with its app secret: channel authorization (`/pusher/auth`, the SDK's
// authorizeChannel) and user authentication (`/pusher/user-auth`, authenticateUser), for the
// user signed in to the demo (a cookie session; the "password" step is left out: a demo).
// It never sees a message: they are end-to-end encrypted in the browsers.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Pusher from 'pusher';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const JS_ROOT = path.resolve(HERE, '..');
const PKG = path.join(JS_ROOT, 'packages', 'e2ee');
const MODULES = path.join(JS_ROOT, 'node_modules');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
};

/** URL prefix → directory served from it (read-only, no listing). */
const STATIC = [
  ['/pkg/dist/', path.join(PKG, 'dist')],
  ['/pkg/wasm/', path.join(PKG, 'wasm')],
  ['/bench/', path.join(JS_ROOT, 'bench', 'public')],
  ['/', path.join(HERE, 'public')],
];
const VENDOR = {
  '/vendor/pusher.js': path.join(MODULES, 'pusher-js', 'dist', 'web', 'pusher.js'),
  '/vendor/echo.js': path.join(MODULES, 'laravel-echo', 'dist', 'echo.iife.js'),
};

const USER_ID = /^[a-z][a-z0-9_-]{0,31}$/;
const CHANNEL = 'presence-clinic';
/** The clinic's notice board: a Pusher encrypted channel with hush's key epochs and sealed events. */
const ENC_CHANNEL = 'private-encrypted-clinic';

let wasmCore = null;
/** hush's wasm core in Node, for the epoch keys (hush_crypto::epoch) the Node SDK does not know. */
async function core() {
  if (!wasmCore) {
    const m = await import(pathToFileURL(path.join(PKG, 'wasm', 'hush_wasm.js')).href);
    m.initSync({ module: fs.readFileSync(path.join(PKG, 'wasm', 'hush_wasm_bg.wasm')) });
    wasmCore = m;
  }
  return wasmCore;
}

function send(res, status, body, headers = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'object' && !Buffer.isBuffer(body) ? 'application/json' : 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(data);
}

function readBody(req, limit = 16384) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const parts = [];
    req.on('data', (d) => {
      size += d.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody(req, text) {
  const type = req.headers['content-type'] || '';
  if (type.startsWith('application/json')) return JSON.parse(text || '{}');
  return Object.fromEntries(new URLSearchParams(text));
}

function cookie(req, name) {
  for (const part of (req.headers.cookie || '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/**
 * The pages' Content-Security-Policy: scripts only from this origin (plus the page's own inline
 * import map, by hash), WebAssembly compilation allowed, WebSockets only to hush. A strict CSP
 * matters here: script injected into this origin could use the device's keys.
 */
function csp(html, hush) {
  const hashes = [...html.toString('utf8').matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)]
    .map((m) => `'sha256-${crypto.createHash('sha256').update(m[1]).digest('base64')}'`);
  return [
    "default-src 'none'",
    `script-src 'self' 'wasm-unsafe-eval' ${hashes.join(' ')}`,
    "style-src 'self'",
    "img-src 'self' blob:",
    `connect-src 'self' ws://${hush.host}:${hush.port}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function serveFile(res, file, hush) {
  fs.readFile(file, (err, data) => {
    if (err) return send(res, 404, 'not found');
    const headers = { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'x-content-type-options': 'nosniff' };
    if (file.endsWith('.html')) headers['content-security-policy'] = csp(data, hush);
    send(res, 200, data, headers);
  });
}

/**
 * Starts the demo backend.
 * @param {object} o
 * @param {{host: string, port: number}} o.hush where hush listens
 * @param {{id: string, key: string, secret: string}} o.app the app's credentials
 * @param {number} [o.port] 0 = ephemeral
 * @param {boolean} [o.benchAuth] also sign in ANY user named in the query (`/bench/user-auth?user=`):
 *   only for js/bench, never in the demo
 * @returns {Promise<{port: number, url: string, close: () => Promise<void>, directory: object}>}
 */
export async function startDemo({ hush, app, port = 0, benchAuth = false, masterKey }) {
  // The app's encryption master key (backend only; hush never sees it): derives the channel keys.
  const master = masterKey || process.env.HUSH_DEMO_MASTER_KEY || crypto.randomBytes(32).toString('base64');
  let epoch = 0; // the notice board's current key epoch (0 = Pusher's key)
  const pusher = new Pusher({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: hush.host,
    port: String(hush.port),
    useTLS: false,
    encryptionMasterKeyBase64: master,
  });
  // The directory's keys, read once with the app's credentials (the signed HTTP API,
  // docs/PROTOCOL-EXT.md §3) and handed to the pages to pin: the browsers then refuse a
  // directory that signs with another key.
  const directory = await directoryKeys(pusher);
  // session id → user id; the oldest sessions go beyond MAX_SESSIONS, so a client that logs in
  // in a loop cannot grow the backend's memory without bound.
  const sessions = new Map();
  const MAX_SESSIONS = 10000;

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://localhost');
      const user = sessions.get(cookie(req, 'clinic_session') || '');
      if (req.method === 'POST' && url.pathname === '/api/login') {
        const body = parseBody(req, await readBody(req));
        if (typeof body.user !== 'string' || !USER_ID.test(body.user)) return send(res, 400, { error: 'bad user id' });
        const sid = crypto.randomBytes(24).toString('base64url');
        sessions.set(sid, body.user);
        if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value);
        return send(res, 200, { user: body.user }, {
          'set-cookie': `clinic_session=${sid}; HttpOnly; SameSite=Strict; Path=/`,
        });
      }
      if (req.method === 'GET' && url.pathname === '/api/config') {
        return send(res, 200, {
          user: user ?? null,
          key: app.key,
          wsHost: hush.host,
          wsPort: hush.port,
          channel: CHANNEL,
          encryptedChannel: ENC_CHANNEL,
          directoryKey: directory.key,
          vrfKey: directory.vrf,
        });
      }
      if (req.method === 'POST' && url.pathname === '/pusher/auth') {
        if (!user) return send(res, 403, { error: 'not signed in' });
        const body = parseBody(req, await readBody(req));
        if (body.channel_name === ENC_CHANNEL) {
          const a = pusher.authorizeChannel(body.socket_id, ENC_CHANNEL); // {auth, shared_secret of epoch 0}
          if (epoch === 0) return send(res, 200, a);
          const key = (await core()).epochKey(ENC_CHANNEL, master, epoch);
          return send(res, 200, { auth: a.auth, shared_secret: key, epoch });
        }
        if (body.channel_name !== CHANNEL) return send(res, 403, { error: 'no such room' });
        const presence = { user_id: user, user_info: { name: user } };
        return send(res, 200, pusher.authorizeChannel(body.socket_id, body.channel_name, presence));
      }
      if (req.method === 'POST' && url.pathname === '/api/notice') {
        // A notice from the backend on the encrypted channel (suite 0 under the current epoch).
        if (!user) return send(res, 403, { error: 'not signed in' });
        const body = parseBody(req, await readBody(req));
        const payload = { text: String(body.text ?? '').slice(0, 500), from: user };
        if (epoch === 0) {
          await pusher.trigger(ENC_CHANNEL, 'notice', payload);
        } else {
          const c = await core();
          const data = c.suite0Seal(c.epochKey(ENC_CHANNEL, master, epoch), epoch, JSON.stringify(payload));
          const r = await pusher.post({ path: '/events', body: { name: 'notice', data, channels: [ENC_CHANNEL] } });
          if (r.status !== 200) return send(res, 502, { error: `hush answered ${r.status}` });
        }
        return send(res, 200, { epoch });
      }
      if (req.method === 'POST' && url.pathname === '/api/rotate') {
        // The backend moves the notice board to a new key epoch (docs/E2EE-CHANNELS.md §1).
        if (!user) return send(res, 403, { error: 'not signed in' });
        epoch += 1;
        return send(res, 200, { epoch });
      }
      if (req.method === 'POST' && url.pathname === '/pusher/user-auth') {
        if (!user) return send(res, 403, { error: 'not signed in' });
        const body = parseBody(req, await readBody(req));
        return send(res, 200, pusher.authenticateUser(body.socket_id, { id: user }));
      }
      if (benchAuth && req.method === 'POST' && url.pathname === '/bench/user-auth') {
        const body = parseBody(req, await readBody(req));
        const who = url.searchParams.get('user') || '';
        if (!USER_ID.test(who)) return send(res, 400, { error: 'bad user id' });
        return send(res, 200, pusher.authenticateUser(body.socket_id, { id: who }));
      }
      if (req.method !== 'GET') return send(res, 405, 'method not allowed');
      if (VENDOR[url.pathname]) return serveFile(res, VENDOR[url.pathname], hush);
      const statics = benchAuth ? [['/pkg/wasm-kat/', path.join(PKG, 'wasm-kat')], ...STATIC] : STATIC;
      for (const [prefix, dir] of statics) {
        if (!url.pathname.startsWith(prefix)) continue;
        let rel = decodeURIComponent(url.pathname.slice(prefix.length)) || 'index.html';
        const file = path.resolve(dir, rel);
        if (!file.startsWith(dir + path.sep)) return send(res, 404, 'not found');
        return serveFile(res, file, hush);
      }
      return send(res, 404, 'not found');
    } catch (e) {
      return send(res, 400, { error: String(e && e.message) });
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = server.address().port;
  return {
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    directory,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

async function directoryKeys(pusher) {
  let last;
  for (let i = 0; i < 20; i++) {
    try {
      const res = await pusher.get({ path: '/directory/log/head' });
      const body = await res.json();
      if (body && body.key && body.vrf) return { key: body.key, vrf: body.vrf };
      last = new Error(`unexpected log head answer ${JSON.stringify(body)}`);
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`could not read the directory keys: ${last && last.message}`);
}
