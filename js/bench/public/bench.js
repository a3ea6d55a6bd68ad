// Speed of the wasm core in the browser. Directory answers are recorded once from the real
// server, then the timed loops replay them from memory, so the figures are the device's own
// work (proof verification, HPKE, Ed25519, AEAD), not the network's.
import { init, Transport } from '@hush/e2ee';
import { Device } from '/pkg/wasm/hush_wasm.js';

const cfg = await (await fetch('/api/config')).json();
const out = document.getElementById('out');
const CHANNEL = 'private-bench';
const OUTER = 'client-hush-e2ee';

function connect(user) {
  const pusher = new window.Pusher(cfg.key, {
    wsHost: cfg.wsHost, wsPort: cfg.wsPort, forceTLS: false, enabledTransports: ['ws'],
    disableStats: true, cluster: 'mt1',
    userAuthentication: { endpoint: `/bench/user-auth?user=${encodeURIComponent(user)}`, transport: 'ajax' },
  });
  return { pusher, transport: new Transport(pusher) };
}

function step(dev, op, result) {
  return JSON.parse(dev.step(op, result, Date.now()));
}

/** Runs an op over the network; returns [done, the results it was given]. */
async function record(user, dev, tr, op) {
  const results = [];
  let s = step(dev, op, undefined);
  while (s.request) {
    await tr.signin(user);
    const r = JSON.stringify(await tr.request(s.request.method, s.request.params));
    results.push(r);
    s = step(dev, op, r);
  }
  op.free();
  dev.takeEvents();
  return [s.done, results];
}

/** Runs an op answering its requests from `results` (in order); synchronous. */
function replay(dev, op, results) {
  let i = 0;
  let s = step(dev, op, undefined);
  while (s.request) {
    if (i >= results.length) throw new Error(`unexpected request ${s.request.method}`);
    s = step(dev, op, results[i++]);
  }
  op.free();
  return s.done;
}

async function newUser(user) {
  const { pusher, transport } = connect(user);
  const dev = Device.create(user, true);
  dev.pinDirectoryKey(cfg.directoryKey);
  dev.pinVrfKey(cfg.vrfKey);
  await record(user, dev, transport, dev.publish());
  return { user, dev, transport, pusher };
}

function time(n, f) {
  for (let i = 0; i < Math.min(5, n); i++) f(i); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f(i);
  return (performance.now() - t0) / n;
}

async function main() {
  await init();
  const run = Math.random().toString(36).slice(2, 7);
  const a = await newUser(`bench-a-${run}`);
  const b = await newUser(`bench-b-${run}`);
  const others = [];
  for (let i = 0; i < 50; i += 10) {
    others.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => newUser(`bench-u${i + j}-${run}`)))));
  }
  for (const o of others) o.pusher.disconnect();
  const names50 = others.map((o) => o.user);
  const payload = JSON.stringify({ text: 'x'.repeat(1024 - 11) }); // 1 KiB of JSON

  // Lookup verification of 50 users (one answer holding 50 lookup proofs).
  const [, look50] = await record(a.user, a.dev, a.transport, a.dev.lookup(names50));
  const lookup50 = time(20, () => replay(a.dev, a.dev.lookup(names50), look50));

  // The lookup a seal makes (sender + recipient), alone.
  const sealOp = () => a.dev.seal(CHANNEL, OUTER, 'message', payload, [b.user]);
  const [, sealRec] = await record(a.user, a.dev, a.transport, sealOp());
  const probe = sealOp();
  const sealLookupReq = step(a.dev, probe, undefined).request;
  probe.free();
  const lookupPair = time(50, () => replay(a.dev, a.dev.lookup(sealLookupReq.params.users), sealRec));
  // seal + sign 1 KiB to one device (the op verifies that lookup answer first).
  const envelopes = [];
  const sealTotal = time(200, () => envelopes.push(replay(a.dev, sealOp(), sealRec).data));
  for (let i = 0; i < 10; i++) envelopes.push(replay(a.dev, sealOp(), sealRec).data);

  // open + verify: the first open looks the sender up over the network; then cached.
  const [, openRec] = await record(b.user, b.dev, b.transport, b.dev.open(CHANNEL, OUTER, envelopes[0]));
  let k = 1;
  const open = time(200, () => {
    const m = replay(b.dev, b.dev.open(CHANNEL, OUTER, envelopes[k++]), openRec);
    if (m.senderUser !== a.user) throw new Error('wrong sender');
  });

  // The bare suite 1 operations (no directory work), as the Rust bench measures them: the kat
  // build's KatBench (a sender and one recipient device), when that build is there.
  let bare = null;
  try {
    const kat = await import('/pkg/wasm-kat/hush_wasm.js');
    await kat.default();
    const kb = new kat.KatBench(1024);
    const data = kb.seal();
    bare = { seal_sign_1kib_ms: round(time(300, () => kb.seal())), open_verify_1kib_ms: round(time(300, () => kb.open(data))) };
  } catch (e) {
    bare = `kat build not available: ${e && e.message}`;
  }

  const envelopeBytes = atob(envelopes[1]).length;
  const result = {
    note: "bare_suite1: KatBench (seal+sign / open+verify only, like cargo bench e2ee suite1); device_*: the Device ops the package runs (seal always does a verified lookup of sender + recipients, answered from memory here; open with the sender cached)",
    browser: navigator.userAgent,
    bare_suite1: bare,
    device_seal_1kib_one_device_ms: round(sealTotal),
    device_seal_lookup_of_sender_and_recipient_ms: round(lookupPair),
    device_open_verify_1kib_ms: round(open),
    lookup_verify_50_users_ms: round(lookup50),
    envelope_bytes: envelopeBytes,
    iterations: { seal: 200, open: 200, lookup50: 20 },
  };
  a.pusher.disconnect();
  b.pusher.disconnect();
  return result;
}

const round = (x) => Math.round(x * 1000) / 1000;

main().then(
  (r) => { window.benchResult = r; out.textContent = JSON.stringify(r, null, 2); },
  (e) => { window.benchError = String(e && e.stack ? e.stack : e); out.textContent = window.benchError; },
);
