// Builds what the demo, the browser tests and the bench need, then returns:
//   1. the wasm core (packages/e2ee/scripts/build-wasm.sh: cargo for wasm32 + wasm-bindgen),
//   2. the TypeScript package (tsc),
//   3. checks that Debian's chromium is there (apt-get install -y chromium when missing and
//      running as root), unless CHROMIUM_PATH names another executable,
//   4. checks the hush binary ($HUSH_BIN, else ${CARGO_TARGET_DIR:-<repo>/target}/debug/hush;
//      `cargo build -p hush` when missing).
// HUSH_JS_SKIP_BUILD=1 skips 1 and 2 (already built). `--kat` also builds the wasm with its
// test-only known-answer exports (wasm-kat/, for packages/e2ee/test/vectors.test.mjs);
// `--no-browser` skips 3 and 4 (the Node tests need neither).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hushBinary, REPO_ROOT } from '../lib/hush.mjs';

const JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = path.join(JS, 'packages', 'e2ee');

function run(cmd, args, opts = {}) {
  console.error(`+ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`${cmd} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

const args = process.argv.slice(2);
if (!process.env.HUSH_JS_SKIP_BUILD) {
  run('sh', [path.join(PKG, 'scripts', 'build-wasm.sh')], { cwd: REPO_ROOT });
  if (args.includes('--kat')) run('sh', [path.join(PKG, 'scripts', 'build-wasm.sh'), '--kat'], { cwd: REPO_ROOT });
  run(path.join(JS, 'node_modules', '.bin', 'tsc'), ['-p', path.join(PKG, 'tsconfig.json')]);
}

if (args.includes('--no-browser')) process.exit(0);

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) {
  if (process.env.CHROMIUM_PATH || process.getuid?.() !== 0) {
    console.error(`chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
    process.exit(1);
  }
  run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium']);
}

if (!fs.existsSync(hushBinary())) {
  if (process.env.HUSH_BIN) {
    console.error(`HUSH_BIN=${process.env.HUSH_BIN} does not exist`);
    process.exit(1);
  }
  run('cargo', ['build', '-p', 'hush'], { cwd: REPO_ROOT });
}
