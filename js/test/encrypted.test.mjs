// hush's encrypted channels from Chromium (docs/E2EE-CHANNELS.md) with @hush/e2ee's
// EncryptedChannel: suite 0 events from the backend (the pusher Node SDK's encryption), sealed
// client events between browsers, a key-epoch rotation followed by re-authorizing, and a
// replayed sealed event refused.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openAs, refused, screenshot, startWorld, until } from './harness.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { if (world) await world.stop(); });

const notice = (page, text) => until(page, (t) => window.clinic.notices.find((n) => n.data && n.data.text === t), text);

test('encrypted channel: backend events, sealed client events, key epochs, replay refused', async () => {
  const doctor = await openAs(world, await world.browser.newContext(), 'doctor');
  const patient = await openAs(world, await world.browser.newContext(), 'patient');
  await until(doctor, () => window.clinic.noticeReady);
  await until(patient, () => window.clinic.noticeReady);

  // A sealed client event (hidden event name, signed sequence) from the patient.
  await patient.fill('#notice-text', 'sealed hello');
  await patient.click('#notice-sealed');
  const s = await notice(doctor, 'sealed hello');
  assert.equal(s.event, 'notice');
  assert.equal(s.epoch, 0);
  assert.ok(s.sealed && s.sealed.seq >= 1, JSON.stringify(s));

  // Suite 0 from the backend (the pusher SDK encrypts under Pusher's key, epoch 0).
  await doctor.fill('#notice-text', 'clinic opens at 8');
  await doctor.click('#notice-server');
  for (const p of [doctor, patient]) {
    const n = await notice(p, 'clinic opens at 8');
    assert.equal(n.epoch, 0);
    assert.equal(n.sealed, undefined);
  }

  // The backend moves to epoch 1: the first epoch-1 event makes each page re-authorize once.
  assert.equal(await doctor.evaluate(async () => (await (await fetch('/api/rotate', { method: 'POST' })).json()).epoch), 1);
  await doctor.fill('#notice-text', 'new key, same board');
  await doctor.click('#notice-server');
  for (const p of [doctor, patient]) assert.equal((await notice(p, 'new key, same board')).epoch, 1);
  await patient.fill('#notice-text', 'sealed under epoch 1');
  await patient.click('#notice-sealed');
  assert.equal((await notice(doctor, 'sealed under epoch 1')).epoch, 1);
  await screenshot(doctor, 'encrypted', 'notice-board');

  // attack_sealed_event_replayed_refused: a member captures a sealed event and sends it again.
  const eve = await openAs(world, await world.browser.newContext(), 'eve', { query: 'peer=doctor' });
  await until(eve, () => window.clinic.noticeReady);
  await eve.evaluate(() => {
    window.rawSealed = [];
    window.clinic.pusher.connection.bind('message', (ev) => {
      if (ev.channel === 'private-encrypted-clinic' && ev.event === 'client-hush-sealed') window.rawSealed.push(ev.data);
    });
  });
  await patient.fill('#notice-text', 'say it once');
  await patient.click('#notice-sealed');
  await notice(doctor, 'say it once');
  const raw = await until(eve, () => window.rawSealed.length && window.rawSealed[0]);
  const before = await doctor.evaluate(() => window.clinic.errors.length);
  const count = await doctor.evaluate(() => window.clinic.notices.filter((n) => n.data.text === 'say it once').length);
  await eve.evaluate((d) => window.clinic.pusher.send_event('client-hush-sealed', typeof d === 'string' ? d : JSON.stringify(d), 'private-encrypted-clinic'), raw);
  const err = await refused(doctor, ['replay'], before);
  assert.equal(err.code, 'replay');
  assert.equal(await doctor.evaluate(() => window.clinic.notices.filter((n) => n.data.text === 'say it once').length), count);
});
