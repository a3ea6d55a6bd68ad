// The clinic in headless Chromium (issue 17): a doctor and a patient in two browser contexts
// exchange end-to-end encrypted messages and an attachment over a real hush server; a third
// person cannot read; tampered and replayed envelopes are refused visibly; reload keeps the
// keys (encrypted at rest); backup/restore adds a device and the doctor must re-verify; an
// offline doctor gets messages through the mailbox when back. One story, steps in order.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  openAs, received, refused, screenshot, sendText, startWorld, until, waitPresence,
} from './harness.mjs';

const S = 'clinic';

describe('the clinic in Chromium', () => {
  let world;
  let docCtx;
  let patCtx;
  let doctor;
  let patient;
  let eve;

  before(async () => {
    world = await startWorld();
    docCtx = await world.browser.newContext();
    patCtx = await world.browser.newContext();
    doctor = await openAs(world, docCtx, 'doctor');
    patient = await openAs(world, patCtx, 'patient');
    await waitPresence(doctor);
    await waitPresence(patient);
  });
  after(async () => {
    if (world) await world.stop();
  });

  test('doctor and patient see the same safety number, verify it and exchange messages', async () => {
    const sn = await until(doctor, () => window.clinic.safety);
    const sp = await until(patient, () => window.clinic.safety);
    assert.match(sn, /^\d{60}$/);
    assert.equal(sn, sp, 'both sides compute the same safety number');
    await doctor.click('#verify');
    await patient.click('#verify');
    await until(doctor, () => document.querySelector('#verified').textContent === 'verified');
    await until(patient, () => document.querySelector('#verified').textContent === 'verified');

    assert.equal(await sendText(patient, 'Hello doctor, my knee hurts'), 'sent');
    const m = await received(doctor, 'Hello doctor, my knee hurts');
    assert.equal(m.senderUser, 'patient');
    assert.equal(m.via, 'live');
    assert.equal(m.verifiedSender, true);
    assert.equal(await sendText(doctor, 'Come in at 3pm'), 'sent');
    const r = await received(patient, 'Come in at 3pm');
    assert.equal(r.senderUser, 'doctor');
    await screenshot(doctor, S, 'doctor-chat');
    await screenshot(patient, S, 'patient-chat');
  });

  test('a small attachment travels sealed like a message', async () => {
    const bytes = crypto.randomBytes(12 * 1024);
    await patient.setInputFiles('#file', { name: 'knee-xray.bin', mimeType: 'application/octet-stream', buffer: bytes });
    assert.equal(await sendText(patient, 'the x-ray'), 'sent');
    const m = await received(doctor, 'the x-ray');
    assert.equal(m.data.kind, 'file');
    assert.equal(m.data.name, 'knee-xray.bin');
    assert.equal(m.data.size, bytes.length);
    assert.ok(Buffer.from(m.data.b64, 'base64').equals(bytes), 'the file arrives byte for byte');
    await screenshot(doctor, S, 'attachment');
  });

  test('attack_third_party_with_other_keys_cannot_read: a member of the channel gets ciphertext only', async () => {
    const eveCtx = await world.browser.newContext();
    eve = await openAs(world, eveCtx, 'eve', { query: 'peer=doctor' });
    await until(eve, () => window.clinic.subscribed);
    // Eve records every envelope she is sent on the channel (what any member or the relay sees).
    await eve.evaluate(() => {
      window.raw = [];
      window.clinic.pusher.channel('presence-clinic').bind('client-hush-e2ee', (d) => window.raw.push(d));
    });
    const errorsBefore = await eve.evaluate(() => window.clinic.errors.length);
    await sendText(patient, 'private: results are fine');
    await received(doctor, 'private: results are fine');
    const err = await refused(eve, ['not-a-recipient'], errorsBefore);
    assert.equal(err.code, 'not-a-recipient');
    const raw = await until(eve, () => window.raw.length && window.raw);
    assert.ok(raw.every((d) => typeof d === 'string' && d.startsWith('aHVzaA')), 'suite 1 envelopes');
    assert.ok(!raw.some((d) => d.includes('results are fine')));
    assert.ok(!raw.some((d) => Buffer.from(d, 'base64').toString('latin1').includes('results are fine')),
      'the plaintext is not in the envelope');
    assert.equal(await eve.evaluate(() => window.clinic.received.length), 0, 'eve reads nothing');
    await until(eve, () => document.querySelectorAll('#errors li').length > 0);
    await screenshot(eve, S, 'third-party-refused');
  });

  test('attack_replayed_envelope_refused: a member re-sends a captured envelope', async () => {
    const envelope = await eve.evaluate(() => window.raw[window.raw.length - 1]);
    const before = await doctor.evaluate(() => window.clinic.errors.length);
    const receivedBefore = await doctor.evaluate(() => window.clinic.received.length);
    await eve.evaluate((d) => window.clinic.pusher.channel('presence-clinic').trigger('client-hush-e2ee', d), envelope);
    const err = await refused(doctor, ['replay'], before);
    assert.equal(err.code, 'replay');
    assert.equal(await doctor.evaluate(() => window.clinic.received.length), receivedBefore, 'not shown twice');
  });

  test('attack_tampered_envelope_refused: a relay that flips one byte is caught, visibly', async () => {
    // The patient's WebSocket goes through a proxy (playwright's routeWebSocket) that flips
    // one byte of the next envelope the patient sends.
    let tamper = true;
    let tampered = 0;
    await patient.routeWebSocket(/\/app\//, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((msg) => {
        if (tamper && typeof msg === 'string' && msg.includes('"client-hush-e2ee"')) {
          const frame = JSON.parse(msg);
          const bytes = Buffer.from(frame.data, 'base64');
          bytes[bytes.length - 40] ^= 0x01; // inside the encrypted body
          frame.data = bytes.toString('base64');
          msg = JSON.stringify(frame);
          tamper = false;
          tampered += 1;
        }
        server.send(msg);
      });
    });
    await patient.reload();
    await until(patient, () => window.clinic.ready === true);
    await waitPresence(patient);
    const before = await doctor.evaluate(() => window.clinic.errors.length);
    await sendText(patient, 'tampered on the way');
    const err = await refused(doctor, ['decrypt', 'bad-envelope-signature', 'malformed'], before);
    assert.equal(tampered, 1);
    assert.ok(err.message.length > 0);
    assert.equal(await doctor.evaluate(() => !!window.clinic.received.find((m) => m.data.text === 'tampered on the way')), false);
    await until(doctor, (n) => document.querySelectorAll('#errors li').length > n, before);
    await screenshot(doctor, S, 'tampered-refused');
    // Untouched envelopes still flow (and the refused one did not break the stream).
    await sendText(patient, 'sent again, untouched');
    await received(doctor, 'sent again, untouched');
  });

  test('attack_key_store_read_raw: reload keeps the keys; IndexedDB holds only ciphertext under a non-extractable key', async () => {
    const deviceId = await patient.evaluate(() => window.clinic.e2ee.deviceId);
    // The plaintext state, read from the running device (a test-only peek): its secrets.
    const secrets = await patient.evaluate(() => {
      const doc = JSON.parse(new TextDecoder().decode(window.clinic.e2ee.device.save()));
      const found = [];
      const walk = (v, k) => {
        if (v && typeof v === 'object') for (const [kk, vv] of Object.entries(v)) walk(vv, kk);
        else if (typeof v === 'string' && /secret|signing|encryption|identity/i.test(k || '') && v.length >= 40) found.push(v);
      };
      walk(doc.secrets ?? doc);
      return found;
    });
    assert.ok(secrets.length >= 2, `device secrets found in the state (${secrets.length})`);
    await patient.reload();
    await until(patient, () => window.clinic.ready === true);
    assert.equal(await patient.evaluate(() => window.clinic.e2ee.deviceId), deviceId, 'same device after reload');
    const rec = await patient.evaluate(async () => {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open('hush-clinic-patient');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const get = (k) => new Promise((res, rej) => {
        const r = db.transaction('hush').objectStore('hush').get(k);
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const state = await get('device-state');
      const key = await get('wrap-key');
      let exportError = null;
      try { await crypto.subtle.exportKey('raw', key); } catch (e) { exportError = e.name; }
      const hex = (u) => Array.from(u, (b) => b.toString(16).padStart(2, '0')).join('');
      return {
        fields: Object.keys(state).sort(),
        ciphertext: hex(state.ciphertext),
        iv: hex(state.iv),
        isCryptoKey: key instanceof CryptoKey,
        extractable: key.extractable,
        algorithm: key.algorithm.name,
        exportError,
      };
    });
    assert.deepEqual(rec.fields, ['ciphertext', 'iv', 'v']);
    assert.equal(rec.isCryptoKey, true);
    assert.equal(rec.extractable, false);
    assert.equal(rec.algorithm, 'AES-GCM');
    assert.equal(rec.exportError, 'InvalidAccessError');
    const ct = Buffer.from(rec.ciphertext, 'hex');
    assert.ok(ct.length > 200);
    for (const s of secrets) {
      const raw = Buffer.from(s, 'base64');
      assert.equal(ct.indexOf(raw), -1, 'a raw secret in the stored record');
      assert.equal(ct.indexOf(Buffer.from(s)), -1, 'a base64 secret in the stored record');
    }
    assert.ok(!ct.toString('latin1').includes('patient'), 'the stored record is not plaintext');
    await sendText(patient, 'after a reload');
    await received(doctor, 'after a reload');
    await screenshot(patient, S, 'after-reload');
  });

  let restored;
  test('attack_new_device_of_verified_contact: backup and restore on a fresh context adds a device; the doctor is warned and must re-verify before sending', async () => {
    const safetyBefore = await doctor.evaluate(() => window.clinic.safety);
    await patient.click('details summary');
    await patient.fill('#backup-password', 'correct horse battery staple 42');
    await patient.click('#backup');
    const blob = await until(patient, () => document.querySelector('#backup-out').value, undefined, 60000);
    assert.ok(blob.length > 40);
    const ctx = await world.browser.newContext();
    restored = await openAs(world, ctx, 'patient', { setup: 'none' });
    await until(restored, () => window.clinic.ready === 'setup');
    await restored.fill('#restore-blob', blob);
    await restored.fill('#restore-password', 'correct horse battery staple 42');
    await restored.click('#restore-btn');
    await until(restored, () => window.clinic.ready === true || (window.clinic.errors.length && window.clinic.errors), undefined, 90000);
    assert.equal(await restored.evaluate(() => window.clinic.ready), true);
    const ids = [await patient.evaluate(() => window.clinic.e2ee.deviceId), await restored.evaluate(() => window.clinic.e2ee.deviceId)];
    assert.notEqual(ids[0], ids[1], 'the restored browser is a new device');
    assert.equal(await until(restored, () => window.clinic.safety), safetyBefore, 'same identity, same safety number');
    await screenshot(restored, S, 'restored-device');

    // The doctor, verified the patient earlier: the next send looks the patient up, sees the new
    // device, warns, and does not send until the doctor compares the safety number again.
    await doctor.fill('#text', 'blocked until re-verified');
    await doctor.click('#send');
    await until(doctor, () => document.querySelector('#send-status').dataset.kind === 'blocked');
    assert.equal(await doctor.evaluate(() => document.querySelector('#warning').hidden), false);
    const ev = await doctor.evaluate(() => window.clinic.events.find((e) => e.type === 'key-changed' && e.user === 'patient'));
    assert.ok(ev && ev.added.includes(ids[1]) && ev.wasVerified, JSON.stringify(ev));
    assert.equal(await doctor.evaluate(() => window.clinic.sent.some((s) => s.data.text === 'blocked until re-verified')), false);
    await screenshot(doctor, S, 'key-change-warning');
    await doctor.click('#verify');
    await until(doctor, () => document.querySelector('#verified').textContent === 'verified');
    assert.equal(await sendText(doctor, 'now to both of your devices'), 'sent');
    await received(patient, 'now to both of your devices');
    await received(restored, 'now to both of your devices');
  });

  test('attack_unknown_own_device_raises_owner_alarm: the first device notices the device it did not make', async () => {
    const restoredId = await restored.evaluate(() => window.clinic.e2ee.deviceId);
    const alarms = await patient.evaluate(() => window.clinic.e2ee.checkOwnKeys());
    assert.ok(alarms.some((a) => a.kind === 'unknown-device' && a.device === restoredId), JSON.stringify(alarms));
    await until(patient, (d) => window.clinic.events.some((e) => e.type === 'owner-alarm' && e.device === d), restoredId);
    assert.match(await patient.evaluate(() => document.querySelector('#warning').textContent), /Alarm about your own keys: unknown-device/);
    await screenshot(patient, S, 'owner-alarm');
    // The user confirms it is theirs: no more alarm for it.
    await patient.evaluate((d) => window.clinic.e2ee.acknowledgeOwnDevices([d]), restoredId);
    const again = await patient.evaluate(() => window.clinic.e2ee.checkOwnKeys());
    assert.ok(!again.some((a) => a.device === restoredId), JSON.stringify(again));
  });

  test('linking a second device: card request, approval by the device with the identity key, publish', async () => {
    const ctx = await world.browser.newContext();
    const linked = await openAs(world, ctx, 'patient', { setup: 'none' });
    await until(linked, () => window.clinic.ready === 'setup');
    await linked.click('#setup-link');
    const request = await until(linked, () => document.querySelector('#card-request').value);
    await patient.fill('#approve-input', request);
    await patient.click('#approve');
    const card = await until(patient, () => document.querySelector('#approved-card').value);
    await linked.fill('#install-card', card);
    await linked.click('#install-card-btn');
    await until(linked, () => window.clinic.ready === true || (window.clinic.errors.length && window.clinic.errors));
    assert.equal(await linked.evaluate(() => window.clinic.ready), true);
    const id = await linked.evaluate(() => window.clinic.e2ee.deviceId);
    await waitPresence(linked);
    await sendText(linked, 'from my third device');
    const m = await received(doctor, 'from my third device');
    assert.equal(m.senderDevice, id);
    await until(doctor, (d) => window.clinic.events.some((e) => e.type === 'key-changed' && e.added.includes(d)), id);
    await screenshot(linked, S, 'linked-device');
    await linked.close();
  });

  test('offline doctor: the message is queued in the mailbox and delivered when the doctor is back', async () => {
    await doctor.close();
    await waitPresence(patient, false);
    assert.equal(await sendText(patient, 'while you were away'), 'queued');
    const label = await patient.evaluate(() => window.clinic.sent.at(-1).li.textContent);
    assert.match(label, /queued — delivered when the doctor is online/);
    await screenshot(patient, S, 'queued-for-offline-doctor');
    doctor = await openAs(world, docCtx, 'doctor');
    const m = await received(doctor, 'while you were away', 20000);
    assert.equal(m.via, 'mailbox');
    assert.equal(m.senderUser, 'patient');
    await until(patient, () => window.clinic.sent.at(-1).li.dataset.state === 'delivered', undefined, 20000);
    await screenshot(patient, S, 'delivered');
    await screenshot(doctor, S, 'doctor-back');
  });
});
