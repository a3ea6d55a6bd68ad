// Starts the real hush binary for the demo, the browser tests and the bench.
//
// Binary: $HUSH_BIN, else ${CARGO_TARGET_DIR:-<repo>/target}/debug/hush (as tests/compat).
// `hush serve --port 0` on 127.0.0.1 in a fresh temporary directory; the port is read from the
// "hush listening on 127.0.0.1:PORT" line. Without `apps` it runs on its embedded defaults (the
// development app: app-id / app-key / app-secret, client events on, directory and mailbox on).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEV_APP = Object.freeze({ id: 'app-id', key: 'app-key', secret: 'app-secret' });

/** The hush binary to run. */
export function hushBinary() {
  if (process.env.HUSH_BIN) return process.env.HUSH_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(REPO_ROOT, 'target');
  return path.join(target, 'debug', 'hush');
}

/**
 * Starts hush; resolves to { host, port, app, dir, stop(), stderrText() }.
 * @param {object} [opts]
 * @param {string} [opts.dir] data directory (a new temporary one by default): reuse it to restart
 *   the same server with its key directory and mailboxes.
 * @param {number} [opts.port] 0 = ephemeral
 * @param {object} [opts.env] extra environment (e.g. RUST_LOG)
 * @param {boolean} [opts.keepLogs] keep the whole log (default: the last 100-200 kB)
 */
export async function startHush(opts = {}) {
  const bin = hushBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`hush binary not found at ${bin} (cargo build -p hush, or set HUSH_BIN / CARGO_TARGET_DIR)`);
  }
  const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'hush-js-'));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('HUSH_')) delete env[k];
  if (!env.RUST_LOG) env.RUST_LOG = 'warn';
  Object.assign(env, opts.env || {});
  const child = spawn(bin, ['serve', '--port', String(opts.port ?? 0)], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const keepAll = !!opts.keepLogs;
  child.stderr.on('data', (d) => {
    stderr += d.toString();
    if (!keepAll && stderr.length > 200000) stderr = stderr.slice(-100000);
    if (process.env.HUSH_JS_VERBOSE) process.stderr.write(d);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`hush did not start within 15 s\n${stdout}\n${stderr.slice(-3000)}`));
    }, 15000);
    child.stdout.on('data', (d) => {
      stdout += d.toString();
      const m = /hush listening on ([0-9.]+):(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[2]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hush exited (${code}) before listening\n${stdout}\n${stderr.slice(-3000)}`));
    });
  });
  return {
    host: '127.0.0.1',
    port,
    app: DEV_APP,
    dir,
    child,
    pid: child.pid,
    stderrText: () => stderr,
    stdoutText: () => stdout,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(t);
    },
  };
}
