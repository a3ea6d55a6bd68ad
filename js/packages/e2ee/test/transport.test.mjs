// The TypeScript transport alone (node --test, no wasm, no server): `hush:request` frames over a
// fake pusher-js connection, answers matched by id, server errors mapped to HushError, at most
// 8 requests in flight (PROTOCOL-EXT §1), pending requests failed when the connection drops,
// `hush:mailbox` pushes dispatched, channel events ignored.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HushError } from '../dist/errors.js';
import { Transport } from '../dist/transport.js';

function fakePusher() {
  const handlers = new Map();
  const sent = [];
  const p = {
    key: 'app-key',
    sent,
    connection: {
      state: 'connected',
      socket_id: '1.2',
      bind(ev, cb) { (handlers.get(ev) ?? handlers.set(ev, []).get(ev)).push(cb); },
      unbind() {},
    },
    send_event(event, data) { sent.push({ event, data }); return true; },
    channel() { return undefined; },
    signin() {},
    user: { user_data: null },
    emit(ev, data) { for (const cb of handlers.get(ev) ?? []) cb(data); },
    answer(id, body) { p.emit('message', { event: 'hush:response', data: { id, ...body } }); },
  };
  return p;
}

const tick = () => new Promise((r) => setImmediate(r));

test('requests are framed as hush:request and answers matched by id', async () => {
  const p = fakePusher();
  const t = new Transport(p);
  const a = t.request('directory.lookup', { users: ['bob'] });
  const b = t.request('log.head');
  await tick();
  assert.equal(p.sent.length, 2);
  assert.equal(p.sent[0].event, 'hush:request');
  assert.deepEqual(p.sent[0].data.params, { users: ['bob'] });
  assert.equal(p.sent[1].data.method, 'log.head');
  assert.ok(!('params' in p.sent[1].data));
  assert.notEqual(p.sent[0].data.id, p.sent[1].data.id);
  p.answer(p.sent[1].data.id, { result: { head: 'h' } });
  p.answer(p.sent[0].data.id, { error: { code: 'rate_limited', message: 'slow down' } });
  assert.deepEqual(await b, { head: 'h' });
  await assert.rejects(a, (e) => e instanceof HushError && e.code === 'rate_limited' && e.source === 'server');
});

test('an answer arriving as a JSON string (pusher-js could not parse) is handled too; unknown ids and channel events are ignored', async () => {
  const p = fakePusher();
  const t = new Transport(p);
  const a = t.request('log.head');
  await tick();
  p.emit('message', { event: 'hush:response', data: JSON.stringify({ id: 'nope', result: 1 }) });
  p.emit('message', { event: 'hush:response', channel: 'private-x', data: { id: p.sent[0].data.id, result: 'forged' } });
  p.emit('message', { event: 'hush:response', data: JSON.stringify({ id: p.sent[0].data.id, result: 'ok' }) });
  assert.equal(await a, 'ok');
});

test('at most 8 requests are in flight; the 9th waits for an answer', async () => {
  const p = fakePusher();
  const t = new Transport(p);
  const all = Array.from({ length: 10 }, (_, i) => t.request('log.head', { epoch: i + 1 }));
  await tick();
  assert.equal(p.sent.length, 8);
  p.answer(p.sent[0].data.id, { result: 0 });
  await tick();
  await tick();
  assert.equal(p.sent.length, 9);
  for (const s of p.sent.slice(1)) p.answer(s.data.id, { result: 0 });
  await tick();
  await tick();
  assert.equal(p.sent.length, 10);
  p.answer(p.sent[9].data.id, { result: 0 });
  await Promise.all(all);
});

test('pending requests fail when the connection drops', async () => {
  const p = fakePusher();
  const t = new Transport(p);
  const a = t.request('log.head');
  await tick();
  p.connection.state = 'connecting';
  p.emit('state_change', { previous: 'connected', current: 'connecting' });
  await assert.rejects(a, (e) => e instanceof HushError && e.code === 'not-connected');
});

test('a request without an answer times out', async () => {
  const p = fakePusher();
  const t = new Transport(p);
  t.timeoutMs = 50;
  await assert.rejects(t.request('log.head'), (e) => e.code === 'timeout');
});

test('hush:mailbox pushes reach the listeners (parsed), channel events do not', async () => {
  const p = fakePusher();
  const t = new Transport(p);
  const got = [];
  t.onMailbox((item) => got.push(item));
  p.emit('message', { event: 'hush:mailbox', data: JSON.stringify({ envelope: 'aHVzaA==', id: 7, sent_ms: 1 }) });
  p.emit('message', { event: 'hush:mailbox', data: { envelope: 'aHVzaA==', id: 8, sent_ms: 2 } });
  p.emit('message', { event: 'hush:mailbox', channel: 'private-x', data: { id: 9 } });
  assert.deepEqual(got.map((g) => g.id), [7, 8]);
});
