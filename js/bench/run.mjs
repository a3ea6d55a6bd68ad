// `npm --prefix js run bench`: the bench page (public/bench.js) in headless Chromium against a
// real hush, then the package size (esbuild, minified + gzip); prints one JSON document.
import fs from 'node:fs';
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
  const wasmFile = (dir) => path.join(PKG, dir, 'hush_wasm_bg.wasm');
  const out = {
    js_min_bytes: js.length,
    js_min_gzip_bytes: gz(js),
  };
  for (const [name, dir] of [['wasm', 'wasm'], ['wasm_without_backup', 'wasm-nobackup']]) {
    if (!fs.existsSync(wasmFile(dir))) continue;
    const w = fs.readFileSync(wasmFile(dir));
    out[`${name}_bytes`] = w.length;
    out[`${name}_gzip_bytes`] = gz(w);
    out[`total_${name === 'wasm' ? 'with' : 'without'}_backup_gzip_bytes`] = gz(js) + gz(w);
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
