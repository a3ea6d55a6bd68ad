// `npm --prefix js run bench`: the bench page (public/bench.js) in headless Chromium against a
// real hush, then the package size (esbuild, minified + gzip); prints one JSON document.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { launch } from '../test/harness.mjs';
import { startHush } from '../lib/hush.mjs';
import { startDemo } from '../demo/server.mjs';

const JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = path.join(JS, 'packages', 'e2ee');
const gz = (buf) => zlib.gzipSync(buf, { level: 9 }).length;

async function sizes() {
  const r = await build({
    entryPoints: [path.join(PKG, 'dist', 'index.js')],
    bundle: true, minify: true, format: 'esm', write: false, platform: 'browser',
    external: ['*.wasm'], logLevel: 'silent',
  });
  const js = Buffer.from(r.outputFiles[0].contents);
  const out = {
    js_min_bytes: js.length,
    js_min_gzip_bytes: gz(js),
    note: 'js = dist/ + the wasm-bindgen glue, bundled and minified by esbuild; wasm = hush_wasm_bg.wasm (wasm-opt -O3, -Oz for the wasm-size profile, when binaryen is there)',
  };
  const w = fs.readFileSync(path.join(PKG, 'wasm', 'hush_wasm_bg.wasm'));
  out.wasm_bytes = w.length;
  out.wasm_gzip_bytes = gz(w);
  out.total_gzip_bytes = out.js_min_gzip_bytes + out.wasm_gzip_bytes;
  // Without the optional backup code (Argon2id): the core built without its `backup` feature
  // (build-wasm.sh --no-backup) into a temporary directory.
  if (!process.env.HUSH_BENCH_SKIP_NOBACKUP) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-wasm-nobackup-'));
    const r = spawnSync('sh', [path.join(PKG, 'scripts', 'build-wasm.sh'), '--no-backup'], {
      env: { ...process.env, HUSH_WASM_OUT: dir }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    });
    const nb = path.join(dir, 'hush_wasm_bg.wasm');
    if (r.status === 0 && fs.existsSync(nb)) {
      const b = fs.readFileSync(nb);
      out.wasm_without_backup_bytes = b.length;
      out.wasm_without_backup_gzip_bytes = gz(b);
      out.total_without_backup_gzip_bytes = out.js_min_gzip_bytes + gz(b);
    } else {
      out.wasm_without_backup = `not built: ${(r.stderr || '').trim().split('\n').slice(-2).join(' ')}`;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

const hush = await startHush();
const demo = await startDemo({ hush, app: hush.app, benchAuth: true });
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${demo.url}/bench/index.html`);
  await page.waitForFunction(() => window.benchResult || window.benchError, undefined, { timeout: 300000 });
  const err = await page.evaluate(() => window.benchError);
  if (err) throw new Error(err);
  const chromium = await page.evaluate(() => window.benchResult);
  const result = { chromium, size: await sizes() };
  fs.mkdirSync(path.join(JS, 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.join(JS, 'bench', 'results', 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  await demo.close();
  await hush.stop();
}
