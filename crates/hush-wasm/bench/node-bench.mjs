// Suite 1 seal+sign and open+verify of 1 KiB to one device in the
// WebAssembly build, timed in Node (the same fixture as hush-crypto's
// `cargo bench --bench e2ee` "suite1 seal+sign 1 KiB/1" and "suite1
// open+verify"). Needs the kat build: sh js/packages/e2ee/scripts/build-wasm.sh --kat
//   node crates/hush-wasm/bench/node-bench.mjs [iterations]   (HUSH_WASM_DIR: another kat build)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dir = process.env.HUSH_WASM_DIR ?? join(repo, 'js', 'packages', 'e2ee', 'wasm-kat');
const w = await import(join(dir, 'hush_wasm.js'));
w.initSync({ module: readFileSync(join(dir, 'hush_wasm_bg.wasm')) });

const n = Number(process.argv[2] ?? 2000);
const b = new w.KatBench(1024);
function time(label, f) {
  for (let i = 0; i < Math.min(200, n); i++) f(); // warm-up
  const samples = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n / 5; i++) f();
    samples.push(Number(process.hrtime.bigint() - t0) / (n / 5) / 1000);
  }
  samples.sort((x, y) => x - y);
  console.log(`${label}: median ${samples[2].toFixed(1)} µs (min ${samples[0].toFixed(1)}, max ${samples[4].toFixed(1)}) over 5 × ${n / 5}`);
  return samples[2];
}
const data = b.seal();
const seal = time('wasm suite1 seal+sign 1 KiB to 1 device', () => b.seal());
const open = time('wasm suite1 open+verify 1 KiB (1-device envelope)', () => b.open(data));
console.log(JSON.stringify({ node: process.version, seal_us: seal, open_us: open }));
