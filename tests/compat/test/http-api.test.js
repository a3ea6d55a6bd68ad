'use strict';
// HTTP API (PROTOCOL.md §12, §17 e): via the pusher Node SDK for interop, raw fetch for errors.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, MAIN_APP } = require('../lib/server');
const { RawClient, sleep } = require('../lib/ws-client');
const { signedQuery, apiRequest, md5Hex, presenceAuth } = require('../lib/auth');
const { sdk, cleanupClients } = require('../lib/clients');

const OTHER = { id: '13', key: 'other-http-key', secret: 'other-http-secret' };
const TIGHT = {
  id: '15', key: 'tight-http-key', secret: 'tight-http-secret',
  max_event_data_bytes: 100, max_channels_per_trigger: 2, max_batch_events: 2, max_channel_name_length: 20,
};
const DISABLED = { id: '14', key: 'disabled-http-key', secret: 'disabled-http-secret', enabled: false };

let srv;
let api;
before(async () => {
  srv = await startServer({ apps: { main: { ...MAIN_APP }, other: OTHER, off: DISABLED, tight: TIGHT } });
  api = sdk(srv, MAIN_APP);
});
after(async () => {
  cleanupClients();
  if (srv) await srv.stop();
});
afterEach(() => cleanupClients());

const open = (app = MAIN_APP) => RawClient.open(srv.wsUrl(app.key));

async function subscribed(channel, extra) {
  const c = await open();
  let opts = { auth: '' };
  if (channel.startsWith('presence-')) opts = presenceAuth(MAIN_APP, c.socketId, channel, extra || { user_id: c.socketId.replace('.', '-') });
  const r = await c.subscribe(channel, opts);
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', r.raw);
  return c;
}

const post = (path, body, opts = {}) => apiRequest(srv, MAIN_APP, 'POST', path, { body, ...opts });
const get = (path, params, opts = {}) => apiRequest(srv, MAIN_APP, 'GET', path, { params, ...opts });

function assertError(res, status) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.ok(res.json && typeof res.json.error === 'string', `error body must be JSON {"error": "..."}: ${res.text}`);
}

function ev(extra = {}) {
  return { name: 'e', channels: ['api-ch'], data: '{"a":1}', ...extra };
}

// ---------------------------------------------------------------- first: nothing occupied yet

test('GET /channels with nothing occupied → exactly {"channels":{}}', async () => {
  const res = await get('/apps/3/channels');
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { channels: {} });
  assert.match(res.headers.get('content-type') || '', /application\/json/);
});

// ---------------------------------------------------------------- known-answer vectors (§17 e)

test('known-answer vectors (e): request signatures', () => {
  const ts = 1353088179;
  const body = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}';
  assert.equal(Buffer.byteLength(body), 68);
  assert.equal(md5Hex(body), 'ec365a775a4cd0599faeb73354201b6f');
  const e = signedQuery(MAIN_APP, 'POST', '/apps/3/events', { body, tamper: { timestamp: ts } });
  assert.equal(e.signature, 'da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c');
  const g = signedQuery(MAIN_APP, 'GET', '/apps/3/channels', { params: { filter_by_prefix: 'presence-', info: 'user_count' }, tamper: { timestamp: ts } });
  assert.equal(g.signature, '16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291');
  const ch = signedQuery(MAIN_APP, 'GET', '/apps/3/channels/presence-foobar', { params: { info: 'user_count,subscription_count' }, tamper: { timestamp: ts } });
  assert.equal(ch.signature, '377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d');
  const t = signedQuery(MAIN_APP, 'POST', '/apps/3/users/12345/terminate_connections', { body: '{}', tamper: { timestamp: ts } });
  assert.equal(t.signature, '01fa634edeb0cae84115307cad5c23f65a46cd286461b1c89637a3b5871a8f0e');
});

test('the exact request from vector (e) is refused as stale (timestamp 1353088179) → 401', async () => {
  const body = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}';
  const res = await post('/apps/3/events', body, { tamper: { timestamp: 1353088179 } });
  assertError(res, 401);
});

// ---------------------------------------------------------------- SDK happy paths

test('SDK trigger to one channel → 200 {} and the subscriber gets the frame', async () => {
  const c = await subscribed('api-one');
  const res = await api.trigger('api-one', 'my-event', { hello: 'world' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  const m = await c.next('my-event');
  assert.equal(m.channel, 'api-one');
  assert.equal(m.data, '{"hello":"world"}');
});

test('SDK trigger to several channels: each subscriber gets one frame per subscribed channel', async () => {
  const a = await subscribed('multi-a');
  const b = await subscribed('multi-b');
  await b.subscribe('multi-c', { auth: '' });
  await api.trigger(['multi-a', 'multi-b', 'multi-c'], 'multi', 'x');
  assert.equal((await a.next('multi')).channel, 'multi-a');
  const got = [(await b.next('multi')).channel, (await b.next('multi')).channel].sort();
  assert.deepEqual(got, ['multi-b', 'multi-c']);
  await a.nothing('multi', 200);
  await b.nothing('multi', 10);
});

test('socket_id exclusion: the excluded connection does not receive the event', async () => {
  const a = await subscribed('excl');
  const b = await subscribed('excl');
  await api.trigger('excl', 'ev', 'x', { socket_id: a.socketId });
  await b.next('ev');
  await a.nothing('ev', 300);
});

test('info=user_count,subscription_count on trigger → per-channel attributes where applicable', async () => {
  await subscribed('presence-info', { user_id: 'one' });
  await subscribed('presence-info', { user_id: 'one' });
  await subscribed('info-news');
  const res = await api.trigger(['presence-info', 'info-news'], 'ev', 'x', { info: 'user_count,subscription_count' });
  const body = await res.json();
  assert.equal(body.channels['presence-info'].user_count, 1);
  assert.equal(body.channels['presence-info'].subscription_count, 2);
  assert.deepEqual(body.channels['info-news'], { subscription_count: 1 });
});

test('SDK triggerBatch: events delivered in order; response {}', async () => {
  const a = await subscribed('batch-a');
  await a.subscribe('batch-b', { auth: '' });
  const res = await api.triggerBatch([
    { channel: 'batch-a', name: 'b1', data: { n: 1 } },
    { channel: 'batch-b', name: 'b2', data: 'two' },
    { channel: 'batch-a', name: 'b3', data: { n: 3 } },
  ]);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  const names = [];
  for (let i = 0; i < 3; i++) names.push((await a.next((m) => /^b\d$/.test(m.event))).event);
  assert.deepEqual(names, ['b1', 'b2', 'b3']);
});

test('triggerBatch with info → {"batch":[...]} in request order, {} for items without info', async () => {
  await subscribed('binfo');
  await subscribed('binfo');
  const res = await api.triggerBatch([
    { channel: 'binfo', name: 'x', data: '1', info: 'subscription_count' },
    { channel: 'binfo', name: 'y', data: '2' },
  ]);
  assert.deepEqual(await res.json(), { batch: [{ subscription_count: 2 }, {}] });
});

test('batch socket_id exclusion per item', async () => {
  const a = await subscribed('bexcl');
  const b = await subscribed('bexcl');
  await api.triggerBatch([{ channel: 'bexcl', name: 'x', data: '1', socket_id: a.socketId }]);
  await b.next('x');
  await a.nothing('x', 300);
});

test('events from one publisher arrive in order', async () => {
  const c = await subscribed('ordered');
  for (let i = 0; i < 25; i++) await api.trigger('ordered', 'seq', String(i));
  for (let i = 0; i < 25; i++) assert.equal((await c.next('seq')).data, String(i));
});

test('GET /channels lists occupied channels; filter_by_prefix; attribute objects may be empty', async () => {
  await subscribed('list-one');
  await subscribed('list-two');
  await subscribed('other-prefix');
  const res = await api.get({ path: '/channels', params: { filter_by_prefix: 'list-' } });
  const body = await res.json();
  assert.deepEqual(Object.keys(body.channels).sort(), ['list-one', 'list-two']);
  for (const v of Object.values(body.channels)) assert.equal(typeof v, 'object');
  const all = await (await api.get({ path: '/channels' })).json();
  assert.ok(all.channels['other-prefix']);
});

test('GET /channels?filter_by_prefix=presence-&info=user_count', async () => {
  await subscribed('presence-lst', { user_id: 'a' });
  await subscribed('presence-lst', { user_id: 'b' });
  await subscribed('presence-lst', { user_id: 'b' });
  const body = await (await api.get({ path: '/channels', params: { filter_by_prefix: 'presence-lst', info: 'user_count' } })).json();
  assert.deepEqual(body, { channels: { 'presence-lst': { user_count: 2 } } });
});

test('GET /channels with info=user_count but no presence prefix → 400', async () => {
  assertError(await get('/apps/3/channels', { info: 'user_count' }), 400);
  assertError(await get('/apps/3/channels', { info: 'user_count', filter_by_prefix: 'private-' }), 400);
});

test('GET /channels/{name}: occupied + subscription_count; unoccupied → occupied:false', async () => {
  await subscribed('chinfo');
  await subscribed('chinfo');
  const body = await (await api.get({ path: '/channels/chinfo', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(body, { occupied: true, subscription_count: 2 });
  const plain = await (await api.get({ path: '/channels/chinfo' })).json();
  assert.deepEqual(plain, { occupied: true });
  const empty = await (await api.get({ path: '/channels/nobody-here' })).json();
  assert.deepEqual(empty, { occupied: false });
});

test('GET /channels/{unoccupied}?info=subscription_count → counts reported as 0', async () => {
  const body = await (await api.get({ path: '/channels/nobody-here-either', params: { info: 'subscription_count' } })).json();
  assert.equal(body.occupied, false);
  assert.equal(body.subscription_count, 0);
});

test('GET /channels/{name} becomes unoccupied after the last subscriber leaves', async () => {
  const c = await subscribed('vacate');
  c.unsubscribe('vacate');
  await c.ping();
  const body = await (await api.get({ path: '/channels/vacate' })).json();
  assert.deepEqual(body, { occupied: false });
});

test('GET /channels/{non-presence}?info=user_count → 400', async () => {
  assertError(await get('/apps/3/channels/some-public', { info: 'user_count' }), 400);
});

test('GET /channels/{non-cache}?info=cache → 400', async () => {
  assertError(await get('/apps/3/channels/some-public', { info: 'cache' }), 400);
});

test('GET /channels/{non-presence}/users → 400', async () => {
  assertError(await get('/apps/3/channels/some-public/users'), 400);
});

test('GET /channels/{invalid name} → 400', async () => {
  assertError(await get('/apps/3/channels/bad:name'), 400);
});

test('percent-encoded query values are decoded before signing (info=user_count%2Csubscription_count)', async () => {
  await subscribed('presence-pct', { user_id: 'p' });
  // signedQuery encodes values with encodeURIComponent (→ %2C) and signs the decoded string.
  const res = await get('/apps/3/channels/presence-pct', { info: 'user_count,subscription_count' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { occupied: true, user_count: 1, subscription_count: 1 });
});

test('"channel" (single string) is accepted instead of "channels"', async () => {
  const c = await subscribed('single-ch');
  const res = await post('/apps/3/events', { name: 'one', channel: 'single-ch', data: 'd' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, {});
  assert.equal((await c.next('one')).data, 'd');
});

test('#server-to-user-{id} is a valid HTTP trigger target; client- event names are allowed', async () => {
  assert.equal((await post('/apps/3/events', ev({ channels: ['#server-to-user-abc'] }))).status, 200);
  assert.equal((await post('/apps/3/events', ev({ name: 'client-from-server' }))).status, 200);
});

test('data of exactly 10240 bytes → 200; 10241 → 413; measured in UTF-8 bytes', async () => {
  assert.equal((await post('/apps/3/events', ev({ data: 'x'.repeat(10240) }))).status, 200);
  assertError(await post('/apps/3/events', ev({ data: 'x'.repeat(10241) })), 413);
  assert.equal((await post('/apps/3/events', ev({ data: '\u00e9'.repeat(5000) }))).status, 200);
  assertError(await post('/apps/3/events', ev({ data: '\u00e9'.repeat(6000) })), 413);
});

test('SDK surfaces 413 for oversize data as a RequestError', async () => {
  await assert.rejects(api.trigger('api-ch', 'big', 'x'.repeat(11000)), (e) => e.status === 413);
});

test('batch of 10 → 200; 11 → 400', async () => {
  const items = (n) => ({ batch: Array.from({ length: n }, (_, i) => ({ name: 'b', channel: `bc-${i}`, data: String(i) })) });
  assert.equal((await post('/apps/3/batch_events', items(10))).status, 200);
  assertError(await post('/apps/3/batch_events', items(11)), 400);
});

test('batch item data > 10240 bytes → 413', async () => {
  assertError(await post('/apps/3/batch_events', { batch: [{ name: 'b', channel: 'bc', data: 'x'.repeat(10241) }] }), 413);
});

test('batch item with a channels array → 400', async () => {
  assertError(await post('/apps/3/batch_events', { batch: [{ name: 'b', channels: ['x', 'y'], data: '1' }] }), 400);
});

test('batch is atomic: one invalid item rejects the whole batch, nothing is delivered', async () => {
  const c = await subscribed('atomic');
  const res = await post('/apps/3/batch_events', {
    batch: [
      { name: 'ok', channel: 'atomic', data: '1' },
      { name: 'bad', channel: 'private-a:b', data: '2' },
    ],
  });
  assertError(res, 400);
  await c.nothing('ok', 300);
});

test('batch missing name / data / channel → 400; batch not an array → 400', async () => {
  assertError(await post('/apps/3/batch_events', { batch: [{ channel: 'x', data: '1' }] }), 400);
  assertError(await post('/apps/3/batch_events', { batch: [{ name: 'x', data: '1' }] }), 400);
  assertError(await post('/apps/3/batch_events', { batch: [{ name: 'x', channel: 'x' }] }), 400);
  assertError(await post('/apps/3/batch_events', { batch: {} }), 400);
});

test('100 channels → 200; 101 channels → 400', async () => {
  const chans = (n) => Array.from({ length: n }, (_, i) => `many-${i}`);
  assert.equal((await post('/apps/3/events', ev({ channels: chans(100) }))).status, 200);
  assertError(await post('/apps/3/events', ev({ channels: chans(101) })), 400);
});

for (const [label, channels] of [
  ['colon', ['private-a:b']],
  ['#other', ['#other']],
  ['201 characters', ['a'.repeat(201)]],
  ['space', ['a b']],
  ['empty string', ['']],
  ['non-ASCII look-alike', ['priv\u0430te-x']],
  ['one bad among good', ['good-1', 'bad channel']],
  ['non-string', [42]],
]) {
  test(`invalid channel name in trigger (${label}) → 400`, async () => {
    assertError(await post('/apps/3/events', ev({ channels })), 400);
  });
}

test('multi-channel trigger containing a private-encrypted- channel → 400', async () => {
  assertError(await post('/apps/3/events', ev({ channels: ['news', 'private-encrypted-x'] })), 400);
});

test('channels [] → 400; both channel and channels → 400; neither → 400', async () => {
  assertError(await post('/apps/3/events', ev({ channels: [] })), 400);
  assertError(await post('/apps/3/events', ev({ channel: 'a' })), 400);
  const { channels, ...none } = ev();
  assert.ok(channels);
  assertError(await post('/apps/3/events', none), 400);
});

for (const [label, name] of [
  ['missing', undefined],
  ['empty', ''],
  ['pusher: prefix', 'pusher:subscribe'],
  ['pusher_internal: prefix', 'pusher_internal:member_added'],
  ['201 characters', 'e'.repeat(201)],
]) {
  test(`event name ${label} → 400`, async () => {
    assertError(await post('/apps/3/events', ev({ name })), 400);
  });
}

test('event name of 200 characters → 200', async () => {
  assert.equal((await post('/apps/3/events', ev({ name: 'e'.repeat(200) }))).status, 200);
});

test('non-string data: serialized to compact JSON (lenient) or 400 (strict)', async () => {
  const c = await subscribed('nonstring');
  const res = await post('/apps/3/events', { name: 'obj', channels: ['nonstring'], data: { a: 1, b: [true] } });
  if (res.status === 200) {
    assert.equal((await c.next('obj')).data, '{"a":1,"b":[true]}');
  } else {
    assertError(res, 400);
  }
});

test('trigger response is JSON with Content-Type application/json', async () => {
  const res = await post('/apps/3/events', ev());
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') || '', /application\/json/);
  assert.deepEqual(res.json, {});
});

test('missing data → 400', async () => {
  const { data, ...rest } = ev();
  assert.ok(data);
  assertError(await post('/apps/3/events', rest), 400);
});

for (const [label, socketId] of [
  ['injection 1.1:private-x', '1.1:private-x'],
  ['trailing newline', '1234.1234\n'],
  ['Arabic-Indic digits', '\u0661\u0662\u0663.\u0664\u0665\u0666'],
  ['no dot', '1234'],
  ['leading plus', '+1.1'],
  ['three parts', '1.1.1'],
]) {
  test(`invalid socket_id (${label}) → 400`, async () => {
    assertError(await post('/apps/3/events', ev({ socket_id: socketId })), 400);
  });
}

test('malformed JSON body → 400; body that is not an object → 400', async () => {
  assertError(await post('/apps/3/events', '{"name":'), 400);
  assertError(await post('/apps/3/events', '[1,2]'), 400);
});

test('body larger than max_body_bytes (256 KiB) → 413', async () => {
  const body = JSON.stringify(ev({ pad: 'x'.repeat(300 * 1024) }));
  assertError(await post('/apps/3/events', body), 413);
});

test('unknown endpoint under /apps/{id} → 404', async () => {
  const res = await get('/apps/3/nothing-here');
  assert.equal(res.status, 404);
});

test('Content-Type is not required to be exact', async () => {
  const res = await post('/apps/3/events', ev(), { headers: { 'content-type': 'text/plain' } });
  assert.equal(res.status, 200, res.text);
});

// ---------------------------------------------------------------- authentication errors (§12.2)

test('bad signature → 401 with a JSON error that does not reveal the expected signature', async () => {
  const body = JSON.stringify(ev());
  const good = signedQuery(MAIN_APP, 'POST', '/apps/3/events', { body });
  const res = await post('/apps/3/events', body, { tamper: { signature: 'a'.repeat(64) } });
  assertError(res, 401);
  assert.ok(!res.text.includes(good.signature), 'expected signature leaked');
  assert.ok(!res.text.includes(MAIN_APP.secret), 'secret leaked');
});

test('signature made with the wrong secret → 401', async () => {
  assertError(await post('/apps/3/events', ev(), { tamper: { secret: 'not-the-secret' } }), 401);
});

test('unsigned request (no query string) → 401', async () => {
  const res = await apiRequest(srv, MAIN_APP, 'GET', '/apps/3/channels', { rawQuery: '' });
  assertError(res, 401);
});

test('missing auth_signature → 401', async () => {
  assertError(await post('/apps/3/events', ev(), { tamper: { omitSignature: true } }), 401);
});

test('stale timestamp (−700 s) → 401; future (+700 s) → 401; −500 s → 200', async () => {
  const now = Math.floor(Date.now() / 1000);
  assertError(await post('/apps/3/events', ev(), { tamper: { timestamp: now - 700 } }), 401);
  assertError(await post('/apps/3/events', ev(), { tamper: { timestamp: now + 700 } }), 401);
  assert.equal((await post('/apps/3/events', ev(), { tamper: { timestamp: now - 500 } })).status, 200);
});

test('non-numeric auth_timestamp → 401 (or 400)', async () => {
  const res = await post('/apps/3/events', ev(), { tamper: { timestamp: 'yesterday' } });
  assert.ok(res.status === 401 || res.status === 400, `${res.status} ${res.text}`);
});

test('auth_version other than 1.0 → 401', async () => {
  assertError(await post('/apps/3/events', ev(), { tamper: { version: '2.0' } }), 401);
});

test('body_md5 mismatch (signed) → 401', async () => {
  assertError(await post('/apps/3/events', ev(), { tamper: { bodyMd5: md5Hex('something else') } }), 401);
});

test('body_md5 missing on a non-empty body → 401', async () => {
  assertError(await post('/apps/3/events', ev(), { tamper: { bodyMd5: null } }), 401);
});

test('body modified after signing → 401', async () => {
  const body = JSON.stringify(ev());
  const { query } = signedQuery(MAIN_APP, 'POST', '/apps/3/events', { body });
  const evil = JSON.stringify(ev({ data: '{"a":2}' }));
  const res = await apiRequest(srv, MAIN_APP, 'POST', '/apps/3/events', { body: evil, rawQuery: query });
  assertError(res, 401);
});

test('GET with body_md5 of a non-empty string but empty body → 401', async () => {
  const res = await get('/apps/3/channels', undefined, { tamper: { bodyMd5: md5Hex('x') } });
  assertError(res, 401);
});

test('GET with body_md5 of the empty body is fine', async () => {
  const res = await get('/apps/3/channels', undefined, { tamper: { bodyMd5: 'd41d8cd98f00b204e9800998ecf8427e' } });
  assert.equal(res.status, 200, res.text);
});

test('query parameter tampered after signing → 401', async () => {
  const { query } = signedQuery(MAIN_APP, 'GET', '/apps/3/channels', { params: { filter_by_prefix: 'a' } });
  const res = await apiRequest(srv, MAIN_APP, 'GET', '/apps/3/channels', { rawQuery: query.replace('filter_by_prefix=a', 'filter_by_prefix=b') });
  assertError(res, 401);
});

test('path tampered after signing (signature for another app path) → 401', async () => {
  const { query } = signedQuery(MAIN_APP, 'GET', '/apps/3/channels', {});
  const res = await apiRequest(srv, MAIN_APP, 'GET', '/apps/3/channels/x', { rawQuery: query });
  assertError(res, 401);
});

test('app id in the path that does not belong to the key → 401', async () => {
  // Signed correctly with main's key and secret, but for /apps/13 (another existing app).
  const res = await apiRequest(srv, MAIN_APP, 'POST', `/apps/${OTHER.id}/events`, { body: ev() });
  assertError(res, 401);
  // And the other way round: other app's credentials on app 3.
  const res2 = await apiRequest(srv, OTHER, 'POST', '/apps/3/events', { body: ev() });
  assertError(res2, 401);
});

test('unknown auth_key for an existing app id → 401', async () => {
  assertError(await post('/apps/3/events', ev(), { tamper: { key: 'no-such-key' } }), 401);
});

test('unknown app id → 401, answered exactly like a bad signature on a real app (no enumeration)', async () => {
  const ghost = { id: '999', key: 'ghost-key', secret: 'ghost-secret' };
  const unknown = await apiRequest(srv, ghost, 'POST', '/apps/999/events', { body: ev() });
  assertError(unknown, 401);
  // The same credentials on an app id that exists.
  const known = await apiRequest(srv, { ...ghost, id: '3' }, 'POST', '/apps/3/events', { body: ev() });
  assertError(known, 401);
  assert.equal(unknown.text.replace('/apps/999/', '/apps/3/'), known.text);
});

test('disabled app → 403', async () => {
  const res = await apiRequest(srv, DISABLED, 'POST', `/apps/${DISABLED.id}/events`, { body: ev() });
  assertError(res, 403);
});

test('unknown query parameter → 400', async () => {
  const res = await get('/apps/3/channels', { foo: 'bar' });
  assertError(res, 400);
});

test('duplicate query key → 400', async () => {
  const { query } = signedQuery(MAIN_APP, 'GET', '/apps/3/channels', { params: { filter_by_prefix: 'a' } });
  const res = await apiRequest(srv, MAIN_APP, 'GET', '/apps/3/channels', { rawQuery: `${query}&filter_by_prefix=a` });
  assert.ok(res.status === 400 || res.status === 401, `${res.status} ${res.text}`);
});

test('SDK: other app on the same server works with its own credentials', async () => {
  const other = sdk(srv, OTHER);
  const c = await RawClient.open(srv.wsUrl(OTHER.key));
  await c.subscribe('shared-name', { auth: '' });
  const mainSub = await subscribed('shared-name');
  await other.trigger('shared-name', 'app-scoped', 'x');
  await c.next('app-scoped');
  await mainSub.nothing('app-scoped', 300, {});
  await sleep(1);
});

test('per-app limits: max_event_data_bytes, max_channels_per_trigger, max_batch_events, max_channel_name_length', async () => {
  const req = (path, body) => apiRequest(srv, TIGHT, 'POST', `/apps/${TIGHT.id}${path}`, { body });
  assert.equal((await req('/events', { name: 'e', channels: ['a'], data: 'x'.repeat(100) })).status, 200);
  assertError(await req('/events', { name: 'e', channels: ['a'], data: 'x'.repeat(101) }), 413);
  assert.equal((await req('/events', { name: 'e', channels: ['a', 'b'], data: '1' })).status, 200);
  assertError(await req('/events', { name: 'e', channels: ['a', 'b', 'c'], data: '1' }), 400);
  const item = (i) => ({ name: 'e', channel: `c${i}`, data: '1' });
  assert.equal((await req('/batch_events', { batch: [item(1), item(2)] })).status, 200);
  assertError(await req('/batch_events', { batch: [item(1), item(2), item(3)] }), 400);
  assert.equal((await req('/events', { name: 'e', channels: ['n'.repeat(20)], data: '1' })).status, 200);
  assertError(await req('/events', { name: 'e', channels: ['n'.repeat(21)], data: '1' }), 400);
});

test('per-app max_channel_name_length also applies to subscribe', async () => {
  const c = await RawClient.open(srv.wsUrl(TIGHT.key));
  const ok = await c.subscribe('n'.repeat(20), { auth: '' });
  assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
  const bad = await c.subscribe('n'.repeat(21), { auth: '' });
  assert.equal(bad.event, 'pusher:subscription_error', bad.raw);
  assert.equal(bad.data.type, 'InvalidChannel');
});

test('GET /channels/{unoccupied presence}?info=user_count → occupied:false, user_count 0', async () => {
  const body = await (await api.get({ path: '/channels/presence-empty-room', params: { info: 'user_count' } })).json();
  assert.deepEqual(body, { occupied: false, user_count: 0 });
});

test('GET /channels/{unoccupied presence}/users → {"users":[]}', async () => {
  const body = await (await api.get({ path: '/channels/presence-empty-room/users' })).json();
  assert.deepEqual(body, { users: [] });
});

test('#server-to-user- with an empty or invalid user id → 400', async () => {
  assertError(await post('/apps/3/events', ev({ channels: ['#server-to-user-'] })), 400);
  assertError(await post('/apps/3/events', ev({ channels: ['#server-to-user-a b'] })), 400);
  assertError(await post('/apps/3/events', ev({ channels: ['#server-to-user-a#b'] })), 400);
});

test('SDK sendToUser → 200 {}', async () => {
  const res = await api.sendToUser('someone', 'hello', { a: 1 });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
});
