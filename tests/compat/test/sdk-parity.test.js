'use strict';
// hush-sdk (Rust) against the Pusher Node SDK (pusher 5.3.4): the same inputs go to both and the
// outputs must be identical — channel/presence/encrypted authorization, user authentication,
// shared secrets, signed HTTP API queries at a pinned timestamp, suite 0 ciphertext in both
// directions, webhook verification, and refusal of injected socket ids.
//
// hush-sdk is driven through the hidden `hush sdk-vectors` command (JSON cases on stdin, JSON
// results on stdout); the binary is $HUSH_BIN or target/debug/hush (lib/server.js hushBinary).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const nacl = require('tweetnacl');
const Pusher = require('pusher');
const { hushBinary, MAIN_APP } = require('../lib/server');

const MASTER_KEY = Buffer.from('this is 32 bytes long, it really').toString('base64');
const NODE_TEST_MASTER_KEY = 'zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=';
const TIMESTAMP = 1353088179;

function nodeSdk(app = MAIN_APP, masterKey = MASTER_KEY) {
  return new Pusher({
    appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: '1',
    encryptionMasterKeyBase64: masterKey,
  });
}

/** Runs `hush sdk-vectors` on the cases; returns one { ok } or { error } per case. */
function hushVectors(cases, app = MAIN_APP, masterKey = MASTER_KEY) {
  const input = JSON.stringify({ app, master_key: masterKey, cases });
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('HUSH_') && k !== 'HUSH_BIN') delete env[k];
  const out = execFileSync(hushBinary(), ['sdk-vectors'], { input, env, timeout: 20000 });
  const { results } = JSON.parse(out.toString());
  assert.equal(results.length, cases.length);
  return results;
}

/** Node's result in the same { ok } / { error } shape. */
function nodeResult(fn) {
  try {
    return { ok: fn() };
  } catch (e) {
    return { error: String(e.message || e) };
  }
}

/** Asserts that both sides succeeded with equal values, or both refused. */
function assertSame(nodeRes, hushRes, label) {
  if ('error' in nodeRes || 'error' in hushRes) {
    assert.ok('error' in nodeRes && 'error' in hushRes,
      `${label}: node ${JSON.stringify(nodeRes)} vs hush ${JSON.stringify(hushRes)}`);
    return;
  }
  assert.deepEqual(hushRes.ok, nodeRes.ok, label);
}

test('channel authorization: private, presence (member order kept), encrypted', () => {
  const pusher = nodeSdk();
  const cases = [
    { socket_id: '1234.1234', channel: 'private-foobar' },
    { socket_id: '1234.1234', channel: 'presence-foobar', presence: { user_id: '10', user_info: { name: 'Mr. Channels' } } },
    { socket_id: '1234.1234', channel: 'presence-foobar', presence: { user_id: 'u', user_info: { z: 1, a: [2, { y: null, b: 'ü "q"' }] } } },
    { socket_id: '98765.4321', channel: 'presence-room', presence: { user_id: 'no-info' } },
    { socket_id: '1234.1234', channel: 'private-encrypted-foo' },
    { socket_id: '5.6', channel: 'private-encrypted-cache-x_y=z@a,b.c;d' },
    { socket_id: '18446744073709551615.1', channel: 'private-' + 'a'.repeat(192) },
  ];
  const hush = hushVectors(cases.map((c) => ({ op: 'channel_auth', ...c })));
  cases.forEach((c, i) => {
    const node = nodeResult(() => pusher.authorizeChannel(c.socket_id, c.channel, c.presence));
    assert.ok('ok' in node, JSON.stringify(node));
    assertSame(node, hush[i], `${c.channel} ${c.socket_id}`);
    // Byte-exact channel_data (the signed string), not just equal JSON values.
    if (c.presence) assert.equal(hush[i].ok.channel_data, node.ok.channel_data);
  });
  // Known answers (PROTOCOL.md §17 a, c).
  assert.equal(hush[0].ok.auth, '278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4');
  assert.equal(hush[4].ok.shared_secret, '3x0KbqI7rIgm1LH1vj0MbmQu3a1H1t0DYjzwM8+rKlc=');
});

test('pusher-http-node test credentials (key f00d, secret tofu) give the same signatures', () => {
  const app = { id: '1', key: 'f00d', secret: 'tofu' };
  const pusher = nodeSdk(app, NODE_TEST_MASTER_KEY);
  const hush = hushVectors([
    { op: 'user_auth', socket_id: '123.456', user: { id: '45678' } },
    { op: 'channel_auth', socket_id: '123.456', channel: 'private-encrypted-bla' },
    { op: 'shared_secret', channel: 'private-encrypted-bla' },
  ], app, NODE_TEST_MASTER_KEY);
  assertSame(nodeResult(() => pusher.authenticateUser('123.456', { id: '45678' })), hush[0], 'user');
  assert.equal(hush[0].ok.auth, 'f00d:f4b1fdeea7c93e32648c7230e32b172057c5623cace6cfce791c6e7035e0babd');
  assertSame(nodeResult(() => pusher.authorizeChannel('123.456', 'private-encrypted-bla')), hush[1], 'encrypted');
  assert.equal(hush[2].ok, 'nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ=');
  assert.equal(hush[2].ok, Buffer.from(pusher.channelSharedSecret('private-encrypted-bla')).toString('base64'));
});

test('user authentication: id, user_info, watchlist', () => {
  const pusher = nodeSdk();
  const users = [
    { id: '12345' },
    { id: '12345', user_info: { name: 'Alice' } },
    { id: 'alice@example.com', user_info: { role: 'admin', age: 30 }, watchlist: ['bob', 'carol'] },
  ];
  const hush = hushVectors(users.map((user) => ({ op: 'user_auth', socket_id: '1234.1234', user })));
  users.forEach((u, i) => {
    const node = nodeResult(() => pusher.authenticateUser('1234.1234', u));
    assertSame(node, hush[i], JSON.stringify(u));
    assert.equal(hush[i].ok.user_data, node.ok.user_data);
  });
  assert.equal(hush[0].ok.auth, '278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba');
  assert.equal(hush[1].ok.auth, '278d425bdf160c739803:ce475882a5db9a1b8f065436323988ffd226a9efd61f91ec593a18533b21169f');
});

test('injected or look-alike socket ids and bad channel names are refused by both', () => {
  const pusher = nodeSdk();
  const bad = [
    ['1234.1234:private-victim', 'private-x'],
    ['1.1\n', 'private-x'],
    ['\u0661\u0662\u0663.\u0664\u0665\u0666', 'private-x'],
    ['1.1 ', 'private-x'],
    [' 1.1', 'private-x'],
    ['1.1.1', 'private-x'],
    ['', 'private-x'],
    ['1.1', 'private-a:b'],
    ['1.1', 'presence-x y'],
    ['1.1', ''],
    ['1.1', 'a'.repeat(201)],
    ['1.1', '#server-to-user-1'],
  ];
  const hush = hushVectors([
    ...bad.map(([socket_id, channel]) => ({ op: 'channel_auth', socket_id, channel })),
    ...bad.slice(0, 7).map(([socket_id]) => ({ op: 'user_auth', socket_id, user: { id: '1' } })),
  ]);
  bad.forEach(([sid, ch], i) => {
    assert.ok('error' in nodeResult(() => pusher.authorizeChannel(sid, ch)), `node accepted ${JSON.stringify([sid, ch])}`);
    assert.ok('error' in hush[i], `hush accepted ${JSON.stringify([sid, ch])}: ${JSON.stringify(hush[i])}`);
  });
  bad.slice(0, 7).forEach(([sid], j) => {
    const r = hush[bad.length + j];
    assert.ok('error' in nodeResult(() => pusher.authenticateUser(sid, { id: '1' })));
    assert.ok('error' in r, `hush signed in ${JSON.stringify(sid)}`);
  });
});

test('shared secrets match channelSharedSecret', () => {
  const pusher = nodeSdk();
  const channels = ['private-encrypted-foo', 'private-encrypted-x', 'private-encrypted-cache-' + 'z'.repeat(150)];
  const hush = hushVectors(channels.map((channel) => ({ op: 'shared_secret', channel })));
  channels.forEach((c, i) => {
    assert.equal(hush[i].ok, Buffer.from(pusher.channelSharedSecret(c)).toString('base64'), c);
  });
});

test('signed HTTP API queries at a pinned timestamp (§17 e)', (t) => {
  const pusher = nodeSdk();
  t.mock.method(Date, 'now', () => TIMESTAMP * 1000);
  const batchBody = '{"batch":[{"channel":"private-encrypted-foo","name":"my-event","data":"{\\"nonce\\":\\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\",\\"ciphertext\\":\\"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=\\"}"}]}';
  const requests = [
    { method: 'POST', path: '/apps/3/events', body: '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}' },
    { method: 'GET', path: '/apps/3/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } },
    { method: 'GET', path: '/apps/3/channels/presence-foobar', params: { info: 'user_count,subscription_count' } },
    { method: 'POST', path: '/apps/3/users/12345/terminate_connections', body: '{}' },
    { method: 'POST', path: '/apps/3/batch_events', body: batchBody },
    { method: 'GET', path: '/apps/3/channels/presence-foobar/users' },
    { method: 'POST', path: '/apps/3/events', body: JSON.stringify({ name: 'ü', channels: ['a'], data: '日本語 "q" \\' }) },
  ];
  const hush = hushVectors(requests.map((r) => ({
    op: 'signed_query', method: r.method, path: r.path, params: Object.entries(r.params || {}), body: r.body, timestamp: TIMESTAMP,
  })));
  const expected = [
    'da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c',
    '16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291',
    '377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d',
    '01fa634edeb0cae84115307cad5c23f65a46cd286461b1c89637a3b5871a8f0e',
    '343d24955b6f45c0e65e8d4069f6edeccbe1f6eab3c7412cf200ce9532d1f5c5',
  ];
  requests.forEach((r, i) => {
    const nodeQuery = pusher.createSignedQueryString({ method: r.method, path: r.path, params: r.params, body: r.body });
    // Node leaves values unescaped and sorts keys; hush percent-encodes. Compare decoded params.
    const decode = (q) => Object.fromEntries(new URLSearchParams(q));
    assert.ok('ok' in hush[i], JSON.stringify(hush[i]));
    assert.deepEqual(decode(hush[i].ok), decode(nodeQuery), `${r.method} ${r.path}`);
    if (i < expected.length) assert.equal(decode(hush[i].ok).auth_signature, expected[i]);
  });
});

test('reserved query parameters are refused by both', (t) => {
  const pusher = nodeSdk();
  t.mock.method(Date, 'now', () => TIMESTAMP * 1000);
  const hush = hushVectors([{ op: 'signed_query', method: 'GET', path: '/apps/3/channels', params: [['auth_timestamp', '1']], timestamp: TIMESTAMP }]);
  assert.ok('error' in nodeResult(() => pusher.createSignedQueryString({ method: 'GET', path: '/apps/3/channels', params: { auth_timestamp: 1 } })));
  assert.ok('error' in hush[0], JSON.stringify(hush[0]));
});

/** What pusher-http-node posts for a trigger (its own encryption), without sending it. */
function nodeTriggerBody(pusher, channel, event, data) {
  let body;
  pusher.post = (opts) => { body = opts.body; return Promise.resolve(); };
  pusher.trigger(channel, event, data);
  return body;
}

test('Node SDK ciphertext opens in hush-sdk (JSON.stringify semantics)', () => {
  const pusher = nodeSdk();
  const payloads = [{ message: 'hello', n: [1, 2] }, 'plain string', 42, { unicode: 'ü 日本 🔐' }, 'x'.repeat(5000)];
  const channel = 'private-encrypted-parity';
  const bodies = payloads.map((p) => nodeTriggerBody(pusher, channel, 'ev', p));
  bodies.forEach((b) => assert.deepEqual(Object.keys(JSON.parse(b.data)), ['nonce', 'ciphertext']));
  const hush = hushVectors([
    ...bodies.map((b) => ({ op: 'decrypt', channel, data: b.data })),
    // The wrong channel's key, and a flipped ciphertext byte, must both fail.
    { op: 'decrypt', channel: 'private-encrypted-other', data: bodies[0].data },
    { op: 'decrypt', channel, data: flipCiphertextByte(bodies[0].data) },
  ]);
  payloads.forEach((p, i) => assert.equal(hush[i].ok, JSON.stringify(p), `payload ${i}`));
  assert.ok('error' in hush[payloads.length], 'opened with the wrong channel key');
  assert.ok('error' in hush[payloads.length + 1], 'opened a tampered box');
});

function flipCiphertextByte(data) {
  const d = JSON.parse(data);
  const ct = Buffer.from(d.ciphertext, 'base64');
  ct[ct.length - 1] ^= 1;
  return JSON.stringify({ nonce: d.nonce, ciphertext: ct.toString('base64') });
}

test('hush-sdk ciphertext opens with tweetnacl under the Node SDK key', () => {
  const pusher = nodeSdk();
  const channel = 'private-encrypted-parity';
  const plaintexts = ['{"message":"hello"}', '"quoted"', '', 'ü 日本 🔐'];
  const hush = hushVectors(plaintexts.map((plaintext) => ({ op: 'encrypt', channel, plaintext })));
  const nonces = new Set();
  plaintexts.forEach((pt, i) => {
    const wire = hush[i].ok;
    assert.match(wire, /^\{"nonce":"[A-Za-z0-9+/]{32}","ciphertext":"[A-Za-z0-9+/=]+"\}$/);
    const { nonce, ciphertext } = JSON.parse(wire);
    nonces.add(nonce);
    const opened = nacl.secretbox.open(
      new Uint8Array(Buffer.from(ciphertext, 'base64')),
      new Uint8Array(Buffer.from(nonce, 'base64')),
      new Uint8Array(pusher.channelSharedSecret(channel)),
    );
    assert.ok(opened, `tweetnacl could not open hush ciphertext ${i}`);
    assert.equal(Buffer.from(opened).toString('utf8'), pt);
  });
  assert.equal(nonces.size, plaintexts.length, 'nonces must be fresh');
});

test('known secretbox vector (§17 d) opens in hush-sdk', () => {
  const data = '{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}';
  const [r] = hushVectors([{ op: 'decrypt', channel: 'private-encrypted-foo', data }]);
  assert.equal(r.ok, '{"message":"hello"}');
});

test('webhook verification agrees with WebHook.isValid()', () => {
  const pusher = nodeSdk();
  const b1 = '{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}';
  const s1 = '709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa';
  const b2 = '{"time_ms":1530710011901,"events":[{"name":"client_event","channel":"private-my-channel","event":"client-event","data":"Unencrypted","socket_id":"240621.35780774"}]}';
  const s2 = '6a11f381b211b0ebbd9dbd3d74744392b06dca9f0a7d43adff26b68dd77db525';
  const hooks = [
    { key_header: MAIN_APP.key, signature: s1, body: b1 },
    { key_header: MAIN_APP.key, signature: s2, body: b2 },
    { key_header: MAIN_APP.key, signature: s2, body: b1 },
    { key_header: 'other-key', signature: s1, body: b1 },
    { key_header: MAIN_APP.key, signature: s1, body: b1.replace('test_channel', 'test_channex') },
    { key_header: MAIN_APP.key, signature: '', body: b1 },
  ];
  const hush = hushVectors(hooks.map((h) => ({ op: 'webhook', ...h })));
  hooks.forEach((h, i) => {
    const hook = pusher.webhook({
      headers: { 'x-pusher-key': h.key_header, 'x-pusher-signature': h.signature, 'content-type': 'application/json' },
      rawBody: h.body,
    });
    const nodeValid = hook.isValid();
    assert.equal('ok' in hush[i], nodeValid, `webhook ${i}: node ${nodeValid}, hush ${JSON.stringify(hush[i])}`);
    if (nodeValid) {
      assert.equal(hush[i].ok.time_ms, hook.getTime().getTime());
      assert.equal(hush[i].ok.events, hook.getEvents().length);
    }
  });
  assert.ok('ok' in hush[0] && 'ok' in hush[1]);
});
