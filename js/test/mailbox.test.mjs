// The mailbox against a server that shuffles what it returns: a proxy reverses every
// `mailbox.fetch` answer. The doctor must still get the patient's queued messages once each,
// in the order they were sent (@hush/e2ee orders each stream by its signed sequence number
// before the core opens them; the core refuses duplicates).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openAs, received, sendText, startWorld, until, waitPresence } from './harness.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { if (world) await world.stop(); });

test('attack_mailbox_reordered_by_server: queued messages are delivered in sending order, once', async () => {
  const docCtx = await world.browser.newContext();
  let doctor = await openAs(world, docCtx, 'doctor');
  const patient = await openAs(world, await world.browser.newContext(), 'patient');
  await waitPresence(patient);
  await doctor.close();
  await waitPresence(patient, false);
  const texts = ['first', 'second', 'third', 'fourth'];
  for (const t of texts) assert.equal(await sendText(patient, t), 'queued');

  let reversed = 0;
  await docCtx.routeWebSocket(/\/app\//, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((msg) => {
      if (typeof msg === 'string' && msg.includes('hush:response')) {
        const f = JSON.parse(msg);
        const d = JSON.parse(f.data);
        if (d.result && Array.isArray(d.result.messages) && d.result.messages.length > 1) {
          d.result.messages.reverse();
          f.data = JSON.stringify(d);
          msg = JSON.stringify(f);
          reversed += 1;
        }
      }
      ws.send(msg);
    });
  });
  doctor = await openAs(world, docCtx, 'doctor');
  await received(doctor, 'fourth', 20000);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(reversed >= 1, 'the proxy reversed a fetch answer');
  const got = await doctor.evaluate(() => window.clinic.received.filter((m) => m.via === 'mailbox').map((m) => ({ t: m.data.text, late: !!m.late, seq: m.sequence })));
  assert.deepEqual(got.map((g) => g.t), texts, JSON.stringify(got));
  assert.ok(got.every((g) => !g.late), JSON.stringify(got));
  await until(patient, () => window.clinic.sent.every((s) => s.li.dataset.state === 'delivered'), undefined, 20000);
});
