'use strict';
// Starts the real hush binary as a child process and stops it again.
//
//   const srv = await startServer({ apps: { main: { ...MAIN_APP, client_events: true } } });
//   srv.port; srv.wsUrl(srv.apps.main.key); await srv.stop();
//
// The binary is $HUSH_BIN, else ${CARGO_TARGET_DIR || <repo>/target}/debug/hush.
// Set HUSH_COMPAT_VERBOSE=1 to stream the server's stderr (logs) to this process.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const HOST = '127.0.0.1';

/** Credentials from Pusher's documentation (PROTOCOL.md §17). */
const MAIN_APP = Object.freeze({
  id: '3',
  key: '278d425bdf160c739803',
  secret: '7ad3773142a6692b25b8',
});

function hushBinary() {
  if (process.env.HUSH_BIN) return process.env.HUSH_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(REPO_ROOT, 'target');
  return path.join(target, 'debug', 'hush');
}

/** Live servers, so that timeouts elsewhere can show the server's log tail. */
const liveServers = new Set();

function logTail(chars = 2000) {
  const parts = [];
  for (const s of liveServers) {
    const text = s.stderrText();
    if (text) parts.push(`--- hush stderr (port ${s.port}) ---\n${text.slice(-chars)}`);
  }
  return parts.join('\n');
}

function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  throw new Error(`unsupported TOML value ${v}`);
}

function tomlTable(name, obj) {
  const lines = [`[${name}]`];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    lines.push(`${k} = ${tomlValue(v)}`);
  }
  return lines.join('\n');
}

/**
 * Builds the hush.toml text for a server section, a map label → app settings
 * and optional other sections (`{ cluster: {...}, store: {...} }`).
 */
function buildConfig({ server = {}, apps = {}, sections = {}, extraToml = '' } = {}) {
  const parts = [tomlTable('server', { host: HOST, shutdown_timeout: 3, ...server })];
  for (const [name, table] of Object.entries(sections)) parts.push(tomlTable(name, table));
  for (const [label, app] of Object.entries(apps)) parts.push(tomlTable(`apps.${label}`, app));
  if (extraToml) parts.push(extraToml);
  return parts.join('\n\n') + '\n';
}

/**
 * How many hush nodes each test server is (HUSH_COMPAT_NODES, default 1).
 * With more than one, startServer() starts a cluster on one Redis and one
 * PostgreSQL database (lib/engines.js): the HTTP API (`srv.port`,
 * `srv.httpBase()`) is node 1, and WebSocket clients (`srv.wsUrl()`,
 * `srv.wsPort()`) are spread over the other nodes in turn, so every API call
 * reaches a different node than the subscribers and clients of one test
 * meet across nodes. A test that is about one node (its capacity, its
 * shutdown, its own configuration) passes `single: true`.
 */
function clusterSize() {
  const n = Number(process.env.HUSH_COMPAT_NODES || 1);
  return Number.isInteger(n) && n > 1 ? n : 1;
}

/**
 * Starts hush: one node, or a cluster of HUSH_COMPAT_NODES nodes (see
 * clusterSize()); the options are startNode()'s, `single: true` keeps it to
 * one node whatever the environment says.
 */
async function startServer(opts = {}) {
  const n = opts.single ? 1 : clusterSize();
  if (n === 1) return startNode(opts);
  const { engines } = require('./engines');
  const { redis, pg } = await engines();
  // Through the environment, so that tests writing their own hush.toml
  // (`noConfig` + `--config`) are clustered too; a test's own [cluster]
  // settings (`sections.cluster`) are in its file and the environment wins
  // only for what is set here.
  const own = (opts.sections || {}).cluster || {};
  const env = {
    HUSH_CLUSTER__REDIS_URL: redis.url,
    // One Redis for the whole test process: each cluster its own keys.
    HUSH_CLUSTER__PREFIX: `c${process.pid}x${Math.random().toString(36).slice(2, 8)}:`,
    ...(own.lease === undefined ? { HUSH_CLUSTER__LEASE: '3' } : {}),
    HUSH_STORE__URL: pg.createDatabase(),
    ...(opts.env || {}),
  };
  const nodes = [];
  try {
    for (let i = 0; i < n; i += 1) nodes.push(await startNode({ ...opts, env }));
  } catch (e) {
    await Promise.all(nodes.map((x) => x.stop()));
    throw e;
  }
  const [api, ...socketNodes] = nodes;
  let turn = 0;
  const nextNode = () => socketNodes[(turn++) % socketNodes.length];
  return {
    ...api,
    nodes,
    get port() { return api.port; },
    get exitStatus() { return api.exitStatus; },
    wsPort: () => nextNode().port,
    wsUrl: (key, o) => nextNode().wsUrl(key, o),
    stderrText: () => nodes.map((x) => x.stderrText()).join('\n'),
    async stop(o) {
      const res = await Promise.all(nodes.map((x) => x.stop(o)));
      return res[0];
    },
  };
}

/**
 * Starts one hush process.
 * @param {object} opts
 * @param {object} [opts.server] [server] settings (host is always 127.0.0.1)
 * @param {object} [opts.apps] label → app settings; defaults to { main: MAIN_APP }
 * @param {object} [opts.env] extra environment variables
 * @param {boolean} [opts.noConfig] start without --config (dev app), cwd = an empty tmp dir
 * @param {string[]} [opts.args] extra arguments after `serve`
 * @param {number} [opts.timeoutMs] time to wait for the "hush listening on" line
 * @param {object} [opts.sections] other TOML tables, name → settings
 * @param {string} [opts.extraToml] TOML text appended as it is (arrays of tables)
 */
async function startNode(opts = {}) {
  const bin = hushBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`hush binary not found at ${bin} (build it, or set HUSH_BIN / CARGO_TARGET_DIR)`);
  }
  const apps = opts.apps || { main: { ...MAIN_APP } };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-compat-'));
  const args = ['serve'];
  if (!opts.noConfig) {
    const configPath = path.join(dir, 'hush.toml');
    fs.writeFileSync(configPath, buildConfig({
      server: opts.server, apps, sections: opts.sections, extraToml: opts.extraToml,
    }));
    args.push('--config', configPath);
  }
  args.push('--port', '0', ...(opts.args || []));

  const env = { ...process.env };
  // Never inherit HUSH_* settings from the caller's shell; tests decide them.
  for (const k of Object.keys(env)) if (k.startsWith('HUSH_')) delete env[k];
  if (!env.RUST_LOG) env.RUST_LOG = 'info';
  Object.assign(env, opts.env || {});

  const child = spawn(bin, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const verbose = !!process.env.HUSH_COMPAT_VERBOSE;
  child.stderr.on('data', (d) => {
    stderr += d.toString();
    if (stderr.length > 400000) stderr = stderr.slice(-200000);
    if (verbose) process.stderr.write(d);
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });

  const srv = {
    host: HOST,
    port: 0,
    apps,
    dir,
    child,
    exited,
    exitStatus: null,
    stdoutText: () => stdout,
    stderrText: () => stderr,
    httpBase: () => `http://${HOST}:${srv.port}`,
    /** The port WebSocket clients connect to (a cluster spreads them over its nodes). */
    wsPort: () => srv.port,
    /** ws URL for an app key; `query` replaces the default query string, `path` the whole path. */
    wsUrl(key, { query, path: p } = {}) {
      const q = query === undefined ? 'protocol=7&client=js&version=8.6.0&flash=false' : query;
      const pathPart = p === undefined ? `/app/${key}` : p;
      return `ws://${HOST}:${srv.port}${pathPart}${q ? `?${q}` : ''}`;
    },
    /** Sends a signal and waits (bounded) for the exit; SIGKILL fallback. */
    async stop({ signal = 'SIGTERM', timeoutMs = 8000 } = {}) {
      liveServers.delete(srv);
      if (srv.exitStatus) return srv.exitStatus;
      try { child.kill(signal); } catch { /* already gone */ }
      let timer;
      const res = await Promise.race([
        exited,
        new Promise((r) => { timer = setTimeout(() => r(null), timeoutMs); }),
      ]);
      clearTimeout(timer);
      if (res) return res;
      try { child.kill('SIGKILL'); } catch { /* already gone */ }
      return exited;
    },
  };
  exited.then((st) => { srv.exitStatus = st; liveServers.delete(srv); });

  await new Promise((resolve, reject) => {
    const timeoutMs = opts.timeoutMs || 10000;
    const timer = setTimeout(() => {
      cleanup();
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      reject(new Error(`hush did not print "hush listening on" within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`));
    }, timeoutMs);
    const onData = (d) => {
      stdout += d.toString();
      const m = /hush listening on ([0-9.]+):(\d+)/.exec(stdout);
      if (m) {
        srv.port = Number(m[2]);
        cleanup();
        resolve();
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`hush exited before listening (code ${code}, signal ${signal})\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`));
    };
    function cleanup() {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
    }
    child.stdout.on('data', onData);
    child.on('exit', onExit);
  });
  // Keep collecting stdout after the port line.
  child.stdout.on('data', (d) => { stdout += d.toString(); });
  liveServers.add(srv);
  return srv;
}

/** Runs `hush <args>` to completion (bounded) and returns { code, signal, stdout, stderr }. */
function runHush(args, { env = {}, cwd, timeoutMs = 10000 } = {}) {
  const bin = hushBinary();
  const fullEnv = { ...process.env };
  for (const k of Object.keys(fullEnv)) if (k.startsWith('HUSH_')) delete fullEnv[k];
  Object.assign(fullEnv, env);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      cwd: cwd || fs.mkdtempSync(path.join(os.tmpdir(), 'hush-compat-')),
      env: fullEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`hush ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

module.exports = { startServer, startNode, clusterSize, runHush, buildConfig, hushBinary, logTail, MAIN_APP, HOST, REPO_ROOT };
