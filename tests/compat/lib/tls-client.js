'use strict';
// Run as a child process with NODE_EXTRA_CA_CERTS pointing at hush's self-signed certificate
// (Node reads that variable only at start-up): pusher-js connects over wss, the Pusher Node SDK
// triggers over https, and the received event is printed as one JSON line on stdout.
// Input (environment): HUSH_TLS_HOST, HUSH_TLS_PORT, HUSH_TLS_APP (JSON {id, key, secret}),
// HUSH_TLS_TIMEOUT_MS (default 15000).

const PusherSDK = require('pusher');
const PusherJS = require('pusher-js');

const host = process.env.HUSH_TLS_HOST;
const port = Number(process.env.HUSH_TLS_PORT);
const app = JSON.parse(process.env.HUSH_TLS_APP);

function fail(message) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(message) })}\n`);
  process.exit(1);
}

const timer = setTimeout(() => fail('timeout'), Number(process.env.HUSH_TLS_TIMEOUT_MS || 15000));
const client = new PusherJS(app.key, {
  wsHost: host,
  wssPort: port,
  forceTLS: true,
  enabledTransports: ['ws'],
  disableStats: true,
  cluster: 'mt1',
});
client.connection.bind('error', (e) => fail(`pusher-js error: ${JSON.stringify(e)}`));
const api = new PusherSDK({
  appId: app.id, key: app.key, secret: app.secret, host, port: String(port), useTLS: true, timeout: 5000,
});
const channel = client.subscribe('tls-news');
channel.bind('pusher:subscription_succeeded', async () => {
  try {
    const res = await api.trigger('tls-news', 'greeting', { hello: 'over tls' });
    if (res.status !== 200) fail(`trigger status ${res.status}`);
  } catch (e) {
    fail(`trigger: ${e.message}`);
  }
});
channel.bind('greeting', (data) => {
  clearTimeout(timer);
  process.stdout.write(`${JSON.stringify({ ok: true, data, socketId: client.connection.socket_id })}\n`);
  client.disconnect();
  process.exit(0);
});
