// Known-answer replay of the WebAssembly build (node --test).
//
// Loads the `kat` build of crates/hush-wasm (sh scripts/build-wasm.sh --kat →
// wasm-kat/: the package's exports plus test-only ones) and replays EVERY
// committed vector file of the Rust side, read from the repository (the same
// files the Rust tests read, not copies):
//   crates/hush-crypto/tests/vectors/suite1.txt          suite 1 seal (scripted randomness) and open
//   crates/hush-crypto/tests/vectors/directory.json      signed head, lookup and history proofs
//   crates/hush-crypto/tests/vectors/known-answers.json  suite 0, key epochs, sealed events, backup, safety numbers
//   crates/hush-protocol/vectors/frames.json             the hush:request methods' params/results, mailbox items
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..', '..');
const katDir = process.env.HUSH_WASM_KAT_DIR ?? join(here, '..', 'wasm-kat');
if (!existsSync(join(katDir, 'hush_wasm_bg.wasm'))) {
  throw new Error(`no kat build in ${katDir}: run sh js/packages/e2ee/scripts/build-wasm.sh --kat`);
}
const w = await import(join(katDir, 'hush_wasm.js'));
w.initSync({ module: readFileSync(join(katDir, 'hush_wasm_bg.wasm')) });

const read = (p) => readFileSync(join(repo, p), 'utf8');
const hex = (b) => Buffer.from(b).toString('hex');
const unb64 = (s) => Buffer.from(s, 'base64');

function kv(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.includes(' = ')) continue;
    const i = line.indexOf(' = ');
    out.set(line.slice(0, i).trim(), line.slice(i + 3).trim());
  }
  return out;
}

test('suite 1 vector: seal with the fixed randomness gives the envelope byte for byte; open gives the plaintext', () => {
  const text = read('crates/hush-crypto/tests/vectors/suite1.txt');
  const v = kv(text);
  const got = JSON.parse(w.katSuite1(text));
  // Every output the Rust side computes directly.
  const direct = [
    'sender_identity_public', 'sender_device_signing_public', 'sender_device_id', 'sender_card', 'sender_card_id',
    'recipient_0_x25519_public', 'recipient_0_device_id', 'recipient_0_card', 'recipient_0_card_id', 'recipient_0_binding',
    'recipient_1_x25519_public', 'recipient_1_device_id', 'recipient_1_card', 'recipient_1_card_id', 'recipient_1_binding',
    'log_public_key', 'tree_head', 'data',
  ];
  for (const k of direct) {
    assert.ok(v.has(k), `vector has ${k}`);
    assert.equal(got[k], v.get(k), k);
  }
  // The envelope's parts (header, recipient table, body) are the vector's.
  const env = hex(unb64(v.get('data')));
  assert.equal(hex(unb64(got.data)), env);
  assert.ok(env.startsWith(v.get('header')), 'header');
  for (const k of ['recipients_hash', 'recipient_0_enc', 'recipient_0_wrapped_key', 'recipient_1_enc',
    'recipient_1_wrapped_key', 'body_ciphertext']) {
    assert.ok(env.includes(v.get(k)), k);
  }
  assert.ok(env.endsWith(v.get('body_ciphertext')));
  // Opening the file's envelope on both of Bob's devices.
  for (const i of [0, 1]) {
    assert.equal(got[`opened_${i}`], v.get('plaintext'), `recipient ${i} plaintext`);
    assert.equal(got[`opened_${i}_event`], v.get('inner_event'));
    assert.equal(got[`opened_${i}_tree_head`], v.get('tree_head'));
  }
  // Every key of the file was checked above.
  const inputs = ['sender_user', 'sender_identity_seed', 'sender_device_signing_seed', 'sender_device_x25519_secret',
    'card_created_at', 'card_expires_at', 'recipient_user', 'recipient_identity_seed', 'recipient_0_signing_seed',
    'recipient_0_x25519_secret', 'recipient_1_signing_seed', 'recipient_1_x25519_secret', 'channel', 'event',
    'inner_event', 'timestamp_ms', 'sequence', 'plaintext', 'message_id', 'content_key', 'recipient_0_ephemeral_ikm',
    'recipient_1_ephemeral_ikm', 'log_key_seed', 'log_id', 'tree_epoch', 'tree_root', 'tree_timestamp', 'header',
    'recipients_hash', 'recipient_0_enc', 'recipient_0_wrapped_key', 'recipient_1_enc', 'recipient_1_wrapped_key',
    'body_ciphertext'];
  for (const k of v.keys()) assert.ok(direct.includes(k) || inputs.includes(k), `unchecked vector key ${k}`);
});

test('suite 1 vector: a tampered envelope does not open', () => {
  const text = read('crates/hush-crypto/tests/vectors/suite1.txt');
  const v = kv(text);
  const bytes = unb64(v.get('data'));
  bytes[bytes.length - 5] ^= 1;
  const tampered = text.replace(`data = ${v.get('data')}`, `data = ${bytes.toString('base64')}`);
  assert.throws(() => w.katSuite1(tampered), /decrypt|signature/);
});

test('key directory vector: head, entries, lookup and history proofs verify to the vector values', () => {
  const text = read('crates/hush-crypto/tests/vectors/directory.json');
  const v = JSON.parse(text);
  const got = JSON.parse(w.katDirectory(text));
  assert.equal(got.head_verified, true);
  assert.equal(got.epoch, v.epoch);
  assert.equal(got.root, v.root);
  assert.equal(got.signed_head, v.signed_head);
  assert.equal(got.entries.entry_v1, v.entry_v1);
  assert.equal(got.entries.entry_v2, v.entry_v2);
  assert.equal(got.lookup_version, v.lookup_version);
  assert.equal(got.lookup_entry, v.entry_v2);
  assert.match(got.lookup_other_user_error, /proof does not verify/);
  assert.match(got.lookup_other_root_error, /proof does not verify/);
  assert.deepEqual(got.history, [[2, v.entry_v2], [1, v.entry_v1]]);
  assert.equal(v.history_versions, 2);
  assert.equal(v.roots.at(-1), v.root);
  // A head with one flipped bit no longer verifies under the vector's log key.
  const bad = { ...v, signed_head: v.signed_head.slice(0, -1) + (v.signed_head.endsWith('0') ? '1' : '0') };
  assert.equal(JSON.parse(w.katDirectory(JSON.stringify(bad))).head_verified, false);
});

const ka = JSON.parse(read('crates/hush-crypto/tests/vectors/known-answers.json'));

test('suite 0 known answers (PROTOCOL 17c/17d, pusher-http-node)', () => {
  const s = ka.suite0;
  assert.equal(w.suite0SharedSecret(s.channel, s.master_key_b64), s.channel_key_b64);
  assert.equal(hex(unb64(s.channel_key_b64)), s.channel_key_hex);
  assert.equal(w.suite0Open(s.channel_key_b64, s.data), s.plaintext);
  assert.equal(w.suite0Open(s.channel_key_b64, s.data_reordered), s.plaintext);
  assert.equal(hex(unb64(JSON.parse(s.data).ciphertext)), s.ciphertext_hex);
  assert.equal(hex(unb64(JSON.parse(s.data).nonce)), s.nonce_hex);
  const n = s.pusher_http_node;
  assert.equal(w.suite0SharedSecret(n.channel, n.master_key_b64), n.channel_key_b64);
  // Our own seal (random nonce) opens, and a flipped byte does not.
  const sealed = w.suite0Seal(s.channel_key_b64, 0, s.plaintext);
  assert.equal(w.suite0Open(s.channel_key_b64, sealed), s.plaintext);
  const d = JSON.parse(sealed);
  const ct = unb64(d.ciphertext); ct[0] ^= 1;
  assert.throws(() => w.suite0Open(s.channel_key_b64, JSON.stringify({ ...d, ciphertext: ct.toString('base64') })), /^Error: decrypt/);
});

test('key epoch and sealed-event known answers', () => {
  for (const k of ka.epoch.keys) {
    assert.equal(hex(unb64(w.epochKey(k.channel, ka.epoch.master_key_b64, k.epoch))), k.key_hex, `${k.channel}/${k.epoch}`);
  }
  const s = ka.sealed;
  for (const k of s.sealed_keys) {
    assert.equal(w.katSealedKey(w.epochKey(s.channel, s.master_key_b64, k.epoch)), k.key_hex);
  }
  const e = s.envelope;
  assert.equal(createHash('sha256').update(e.wire).digest('hex'), e.wire_sha256);
  const ch = new w.ChannelCrypto(s.channel, 60000, 300000);
  ch.installKey(e.epoch, w.epochKey(s.channel, s.master_key_b64, e.epoch), e.now_ms);
  const opened = JSON.parse(ch.open('client-hush-sealed', e.wire, e.now_ms));
  assert.equal(opened.event, e.event);
  assert.equal(opened.data, e.data);
  assert.equal(opened.epoch, e.epoch);
  assert.equal(opened.sealed.sender, e.sender_id);
  assert.equal(opened.sealed.messageId, Buffer.from(e.message_id_hex, 'hex').toString('base64url'));
  // The same event again is a replay.
  assert.throws(() => ch.open('client-hush-sealed', e.wire, e.now_ms), /^Error: replay/);
});

test('Argon2id backup known answers (v2 and v1 blobs)', () => {
  const b = ka.backup;
  assert.equal(w.katBackupOpen(b.blob_v2_hex, b.password), b.identity_public_hex);
  assert.equal(w.katBackupOpen(b.blob_v1_hex, b.password_v1), b.identity_public_hex);
  assert.throws(() => w.katBackupOpen(b.blob_v2_hex, b.password + '!'), /kat: .*(decrypt|password|wrong)/i);
  const tampered = b.blob_v2_hex.slice(0, -1) + (b.blob_v2_hex.endsWith('0') ? '1' : '0');
  assert.throws(() => w.katBackupOpen(tampered, b.password), /kat: .*(decrypt|password|wrong)/i);
});

test('safety number known answers (Signal v1/v2 vectors)', () => {
  const s = ka.safety;
  for (const [version, a, bb] of [[1, s.alice_scannable_v1, s.bob_scannable_v1], [2, s.alice_scannable_v2, s.bob_scannable_v2]]) {
    const alice = JSON.parse(w.katSafety(version, s.iterations, s.alice_id, s.alice_identity_hex, s.bob_id, s.bob_identity_hex));
    const bob = JSON.parse(w.katSafety(version, s.iterations, s.bob_id, s.bob_identity_hex, s.alice_id, s.alice_identity_hex));
    assert.equal(alice.display, s.displayable);
    assert.equal(bob.display, s.displayable);
    assert.equal(alice.scannable, a);
    assert.equal(bob.scannable, bb);
  }
});

test('E2EE frames: hush:request methods and mailbox items read and write as frames.json says', () => {
  const f = JSON.parse(read('crates/hush-protocol/vectors/frames.json'));
  assert.ok(f.hush_methods.length >= 10);
  for (const m of f.hush_methods) {
    const got = JSON.parse(w.katHushMethod(m.method, m.params, m.result));
    assert.equal(got.params, m.params, `${m.method} params`);
    assert.equal(got.result, m.result, `${m.method} result`);
  }
  const push = f.frames.find((x) => x.message.type === 'hush_mailbox');
  const item = JSON.parse(JSON.parse(push.wire).data);
  assert.equal(w.katMailboxItem(JSON.stringify(item)), JSON.stringify(item));
  // The device core emits exactly these request shapes.
  const d = w.Device.create('alice', true);
  d.setTrustOnFirstUse(true);
  const op = d.lookup(['alice', 'bob', 'carol']);
  assert.deepEqual(JSON.parse(d.step(op, undefined, Date.now())), { request: { method: 'log.head', params: {} } });
});
