'use strict';
// Factories for the real client libraries pointed at a running hush:
// the pusher Node SDK (server side), pusher-js and Laravel Echo (browser side, run in node).

const PusherSDK = require('pusher');
const PusherJS = require('pusher-js');
// laravel-echo 2.5.0 ships "type": "module" with a CommonJS build named .js, so require() fails;
// load the ESM build with import() instead (see loadEcho).
let EchoClass = null;

/** Loads Laravel Echo (ESM). Call once, e.g. in a before() hook, before echoClient(). */
async function loadEcho() {
  if (!EchoClass) EchoClass = (await import('laravel-echo')).default;
  return EchoClass;
}
const { closeAllRaw } = require('./ws-client');
const { logTail } = require('./server');

const openPusherClients = new Set();

/** pusher Node SDK for `app` on `srv`. */
function sdk(srv, app, extra = {}) {
  return new PusherSDK({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: srv.host,
    port: String(srv.port),
    useTLS: false,
    timeout: 5000,
    ...extra,
  });
}

/**
 * Channel authorization handler backed by the SDK, as an app's /pusher/auth endpoint would be.
 * `presence(channelName, socketId)` returns presence data ({user_id, user_info}) or undefined.
 * `deny(channelName)` returning true makes the endpoint fail (HTTP 403-like error).
 * `tamper(authResponse, params)` may rewrite the response (e.g. break the signature).
 */
function channelAuthHandler(api, { presence, deny, tamper } = {}) {
  return (params, callback) => {
    const { socketId, channelName } = params;
    try {
      if (deny && deny(channelName)) {
        callback(new Error(`denied ${channelName}`), null);
        return;
      }
      const data = channelName.startsWith('presence-') && presence ? presence(channelName, socketId) : undefined;
      let res = api.authorizeChannel(socketId, channelName, data);
      if (tamper) res = tamper(res, params);
      callback(null, res);
    } catch (e) {
      callback(e, null);
    }
  };
}

/** User authentication handler backed by the SDK (`user` = user object incl. id, or fn(socketId)). */
function userAuthHandler(api, user) {
  return (params, callback) => {
    try {
      const u = typeof user === 'function' ? user(params.socketId) : user;
      callback(null, api.authenticateUser(params.socketId, u));
    } catch (e) {
      callback(e, null);
    }
  };
}

/** Options that point pusher-js at hush. */
function pusherOptions(srv, extra = {}) {
  const port = srv.wsPort ? srv.wsPort() : srv.port;
  return {
    wsHost: srv.host,
    wsPort: port,
    wssPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    cluster: 'mt1',
    ...extra,
  };
}

/** A pusher-js client. Tracked so that cleanupClients() disconnects it. */
function pusherClient(srv, app, extra = {}) {
  const c = new PusherJS(app.key, pusherOptions(srv, extra));
  openPusherClients.add(c);
  return c;
}

/** A Laravel Echo client using the pusher broadcaster and pusher-js. */
function echoClient(srv, app, extra = {}) {
  if (!EchoClass) throw new Error('call await loadEcho() first');
  const echo = new EchoClass({
    broadcaster: 'pusher',
    Pusher: PusherJS,
    key: app.key,
    ...pusherOptions(srv),
    ...extra,
  });
  openPusherClients.add(echo.connector.pusher);
  return echo;
}

/**
 * Resolves with the first argument of the first emission of `event` on a pusher-js Dispatcher
 * (bounded). pusher-js channels emit (data, metadata); use onceWithMeta for both.
 */
function once(emitter, event, timeout = 3000, label = event) {
  return onceWithMeta(emitter, event, timeout, label).then((args) => args[0]);
}

/** Like once() but resolves with the full argument array. */
function onceWithMeta(emitter, event, timeout = 3000, label = event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.unbind(event, handler);
      const tail = logTail(1500);
      reject(new Error(`timeout (${timeout} ms) waiting for ${label}${tail ? `\n${tail}` : ''}`));
    }, timeout);
    function handler(...args) {
      clearTimeout(timer);
      emitter.unbind(event, handler);
      resolve(args);
    }
    emitter.bind(event, handler);
  });
}

/** Waits until a pusher-js client's connection is in `state` (bounded). */
function waitState(client, state, timeout = 4000) {
  if (client.connection.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.connection.unbind('state_change', h);
      reject(new Error(`timeout (${timeout} ms) waiting for pusher-js state ${state}; state is ${client.connection.state}`));
    }, timeout);
    function h({ current }) {
      if (current === state) {
        clearTimeout(timer);
        client.connection.unbind('state_change', h);
        resolve();
      }
    }
    client.connection.bind('state_change', h);
  });
}

/**
 * Collects the first argument passed to a callback (`items`; all arguments in `calls`) and lets a
 * test wait for the n-th call.
 */
class Collector {
  constructor() {
    this.items = [];
    this.calls = [];
    this.waiters = [];
    this.push = this.push.bind(this);
  }

  push(...args) {
    this.items.push(args[0]);
    this.calls.push(args);
    for (const w of [...this.waiters]) w();
  }

  /** Waits until at least `n` items were collected (bounded); resolves with the n-th item. */
  waitFor(n = 1, timeout = 3000, label = 'callback') {
    if (this.items.length >= n) return Promise.resolve(this.items[n - 1]);
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.items.length >= n) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve(this.items[n - 1]);
        }
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        const tail = logTail(1500);
        reject(new Error(`timeout (${timeout} ms) waiting for ${label} #${n}; got ${this.items.length}: ${JSON.stringify(this.items)}${tail ? `\n${tail}` : ''}`));
      }, timeout);
      this.waiters.push(check);
    });
  }
}

/** Races `promise` against a timeout (for promises a library might never settle). */
function withTimeout(promise, ms, label = 'promise') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout (${ms} ms) waiting for ${label}\n${logTail(1500)}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Disconnects every pusher-js / Echo client and terminates every raw socket. */
function cleanupClients() {
  for (const c of openPusherClients) {
    try { c.disconnect(); } catch { /* ignore */ }
  }
  openPusherClients.clear();
  closeAllRaw();
}

module.exports = {
  PusherSDK, PusherJS, loadEcho, sdk, pusherClient, echoClient, pusherOptions,
  channelAuthHandler, userAuthHandler, once, onceWithMeta, waitState, withTimeout, Collector, cleanupClients,
};
