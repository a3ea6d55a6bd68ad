// @hush/e2ee on Laravel Echo's pusher connector (echo.connector.pusher): the doctor's page
// uses Echo (echo.join for presence), the patient's plain pusher-js; messages both ways.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openAs, received, screenshot, sendText, startWorld, waitPresence } from './harness.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { if (world) await world.stop(); });

test('the package works through Laravel Echo 2.5.0 (pusher connector)', async () => {
  const doctor = await openAs(world, await world.browser.newContext(), 'doctor', { query: 'echo=1' });
  const patient = await openAs(world, await world.browser.newContext(), 'patient');
  assert.equal(await doctor.evaluate(() => !!window.clinic.echo && window.clinic.pusher === window.clinic.echo.connector.pusher), true);
  await waitPresence(doctor);
  await waitPresence(patient);
  assert.equal(await sendText(doctor, 'sent from Echo'), 'sent');
  assert.equal((await received(patient, 'sent from Echo')).senderUser, 'doctor');
  assert.equal(await sendText(patient, 'to Echo'), 'sent');
  assert.equal((await received(doctor, 'to Echo')).senderUser, 'patient');
  await screenshot(doctor, 'echo', 'doctor-on-echo');
});
