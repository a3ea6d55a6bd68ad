'use strict';
// Redis and PostgreSQL for the cluster run of the compatibility suite
// (HUSH_COMPAT_NODES=3, see lib/server.js): Debian's redis-server and
// PostgreSQL 15, started on free loopback ports in temporary directories
// (no system service), one of each per test process, stopped when it exits.
// Each hush cluster the tests start gets its own Redis key prefix and its own
// database, so the tests of one file never see each other's state.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const HOST = '127.0.0.1';

/** A port nobody listens on right now (the OS picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `host:port` accepts a TCP connection, or rejects after `ms`. */
async function waitForPort(port, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, HOST, () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${HOST}:${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function findBinary(name, dirs) {
  for (const d of dirs) {
    const p = path.join(d, name);
    if (fs.existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  throw new Error(`${name} not found: install Debian's redis-server and postgresql packages (scripts/test.sh does)`);
}

function readTail(file) {
  try { return fs.readFileSync(file, 'utf8').slice(-2000); } catch { return ''; }
}

const PG_DIRS = ['/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin'];

/** Starts redis-server on a free port; `stop()` kills it and removes its directory. */
async function startRedis() {
  const bin = findBinary('redis-server', ['/usr/bin', '/usr/local/bin']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-redis-'));
  const port = await freePort();
  const logPath = path.join(dir, 'redis.log');
  const child = spawn(bin, [
    '--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no',
    '--dir', dir, '--protected-mode', 'yes', '--loglevel', 'warning',
  ], { stdio: ['ignore', 'ignore', fs.openSync(logPath, 'a')] });
  // The test process ends when its tests do; 'exit' stops the engine.
  child.unref();
  await waitForPort(port, 10000, 'redis-server').catch((e) => {
    throw new Error(`${e.message}\n${readTail(logPath)}`);
  });
  return {
    url: `redis://${HOST}:${port}`,
    port,
    stop() {
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a PostgreSQL tool, as the `postgres` system user when this process is root. */
function pgRun(bin, args, opts = {}) {
  const root = process.getuid && process.getuid() === 0;
  const [cmd, argv] = root ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60000, ...opts });
}

/**
 * Starts a throw-away PostgreSQL on a free port (trust authentication, user
 * `hush`); `createDatabase()` makes a fresh database and returns its URL.
 */
async function startPostgres() {
  const initdb = findBinary('initdb', PG_DIRS);
  const binDir = path.dirname(initdb);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-pg-'));
  if (process.getuid && process.getuid() === 0) {
    fs.chmodSync(dir, 0o755);
    spawnSync('chown', ['postgres', dir]);
  }
  const data = path.join(dir, 'data');
  const init = pgRun(initdb, ['-D', data, '-U', 'hush', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const postgres = path.join(binDir, 'postgres');
  const root = process.getuid && process.getuid() === 0;
  const argv = ['-D', data, '-p', String(port), '-k', dir, '-c', `listen_addresses=${HOST}`,
    '-c', 'fsync=off', '-c', 'max_connections=300'];
  const logPath = path.join(dir, 'postgres.log');
  const stdio = ['ignore', 'ignore', fs.openSync(logPath, 'a')];
  const child = root
    ? spawn('runuser', ['-u', 'postgres', '--', postgres, ...argv], { stdio })
    : spawn(postgres, argv, { stdio });
  child.unref();
  await waitForPort(port, 20000, 'postgres').catch((e) => {
    throw new Error(`${e.message}\n${readTail(logPath)}`);
  });
  const psql = findBinary('psql', [binDir, '/usr/bin']);
  let n = 0;
  return {
    port,
    /** A new empty database; its postgres:// URL. */
    createDatabase() {
      n += 1;
      const name = `hush_${process.pid}_${n}`;
      for (let i = 0; ; i += 1) {
        const r = spawnSync(psql, ['-h', HOST, '-p', String(port), '-U', 'hush', '-d', 'postgres',
          '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`], { encoding: 'utf8', timeout: 30000 });
        if (r.status === 0) break;
        // The server may still be finishing its start-up.
        if (i > 40) throw new Error(`CREATE DATABASE failed: ${r.stderr}`);
        spawnSync('sleep', ['0.25']);
      }
      return `postgres://hush@${HOST}:${port}/${name}`;
    },
    stop() {
      pgRun(path.join(binDir, 'pg_ctl'), ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '10']);
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let shared = null;

/** The process's Redis and PostgreSQL, started on first use, stopped at exit. */
async function engines() {
  if (!shared) {
    shared = (async () => {
      const [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
      process.on('exit', () => { redis.stop(); pg.stop(); });
      return { redis, pg };
    })();
  }
  return shared;
}

module.exports = { engines, startRedis, startPostgres, freePort };
