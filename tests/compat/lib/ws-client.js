'use strict';
// A raw WebSocket client for exact wire-level assertions.
//
//   const c = await RawClient.open(srv.wsUrl(key));      // waits for connection_established
//   c.send({ event: 'pusher:ping', data: {} });
//   const pong = await c.next('pusher:pong');            // bounded wait, queue-based
//   await c.nothing('client-x', 300);                    // asserts nothing matching arrives
//
// Every received text frame is queued as { event, channel, data, user_id, ..., raw }.
// next() takes the first queued frame that matches (and removes only that one).

const WebSocket = require('ws');
const { logTail } = require('./server');

const DEFAULT_TIMEOUT = 3000;
const openClients = new Set();

function describe(m) {
  return typeof m === 'function' ? (m.name || 'predicate') : JSON.stringify(m);
}

function matcher(what, opts = {}) {
  const base = typeof what === 'function' ? what : (m) => m.event === what;
  return (m) => {
    if (!base(m)) return false;
    if (opts.channel !== undefined && m.channel !== opts.channel) return false;
    if (opts.where && !opts.where(m)) return false;
    return true;
  };
}

/** JSON-decodes `data` when it is a string (the double-encoding used by most server events). */
function dataOf(msg) {
  if (typeof msg.data === 'string') {
    try { return JSON.parse(msg.data); } catch { return msg.data; }
  }
  return msg.data;
}

class RawClient {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.all = [];
    this.waiters = [];
    this.closeInfo = null;
    this.socketId = null;
    this.activityTimeout = null;
    this.established = null;
    this.binaryFrames = 0;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        openClients.delete(this);
        resolve(this.closeInfo);
        this._notify();
      });
    });
    ws.on('message', (data, isBinary) => this._onMessage(data, isBinary));
    ws.on('error', (e) => { this.lastError = e; });
    openClients.add(this);
  }

  /**
   * Opens a WebSocket. Resolves with a RawClient once the upgrade completed; rejects with
   * an Error carrying `.status` if the server answered the upgrade with an HTTP status.
   */
  static connect(url, { timeout = 5000, ...wsOpts } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: timeout, ...wsOpts });
      let client;
      const timer = setTimeout(() => { ws.terminate(); reject(new Error(`connect timeout ${url}`)); }, timeout + 500);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(client);
      });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        const err = new Error(`HTTP ${res.statusCode} on upgrade to ${url}`);
        err.status = res.statusCode;
        res.resume();
        ws.terminate();
        reject(err);
      });
      ws.once('error', (e) => { clearTimeout(timer); reject(e); });
      client = new RawClient(ws);
    });
  }

  /** connect() and wait for pusher:connection_established. */
  static async open(url, opts = {}) {
    const c = await RawClient.connect(url, opts);
    await c.waitEstablished(opts.timeout || DEFAULT_TIMEOUT);
    return c;
  }

  async waitEstablished(timeout = DEFAULT_TIMEOUT) {
    const m = await this.next('pusher:connection_established', { timeout });
    this.established = m;
    const d = JSON.parse(m.data);
    this.socketId = d.socket_id;
    this.activityTimeout = d.activity_timeout;
    return m;
  }

  _onMessage(data, isBinary) {
    if (isBinary) { this.binaryFrames++; return; }
    const raw = data.toString('utf8');
    let msg;
    try {
      const parsed = JSON.parse(raw);
      msg = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
        ? { ...parsed, raw }
        : { event: undefined, unparsed: parsed, raw };
    } catch {
      msg = { event: undefined, invalidJson: true, raw };
    }
    this.queue.push(msg);
    this.all.push(msg);
    this._notify();
  }

  _notify() {
    for (const w of [...this.waiters]) w();
  }

  _history() {
    const frames = this.all.slice(-15).map((m) => `  ${m.raw}`).join('\n');
    const tail = logTail(1500);
    return `\nlast frames received:\n${frames || '  (none)'}\nclose: ${JSON.stringify(this.closeInfo)}${tail ? `\n${tail}` : ''}`;
  }

  /** Takes (removes) the first queued frame matching `what` (event name or predicate). */
  take(what, opts = {}) {
    const f = matcher(what, opts);
    const i = this.queue.findIndex(f);
    if (i < 0) return undefined;
    return this.queue.splice(i, 1)[0];
  }

  /**
   * Waits (bounded) for the first frame matching `what` (event name or predicate).
   * opts: { timeout, channel, where }.
   */
  next(what, opts = {}) {
    const timeout = opts.timeout || DEFAULT_TIMEOUT;
    const found = this.take(what, opts);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        const m = this.take(what, opts);
        if (m) {
          done();
          resolve(m);
        } else if (this.closeInfo && !opts.allowClosed) {
          done();
          reject(new Error(`socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${describe(what)}${opts.channel ? ` on ${opts.channel}` : ''}${this._history()}`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      timer = setTimeout(() => {
        done();
        reject(new Error(`timeout (${timeout} ms) waiting for ${describe(what)}${opts.channel ? ` on ${opts.channel}` : ''}${this._history()}`));
      }, timeout);
      this.waiters.push(check);
    });
  }

  /** Asserts that no frame matching `what` arrives within `ms` (frames already queued count too). */
  async nothing(what, ms = 300, opts = {}) {
    const f = matcher(what, opts);
    await sleep(ms);
    const hit = this.queue.find(f);
    if (hit) throw new Error(`unexpected frame matching ${describe(what)}: ${hit.raw}`);
  }

  /** Waits (bounded) for the close; resolves with { code, reason }. */
  waitClose(timeout = DEFAULT_TIMEOUT) {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    let timer;
    return Promise.race([
      this.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout (${timeout} ms) waiting for close${this._history()}`)), timeout);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  get isOpen() { return this.ws.readyState === WebSocket.OPEN; }

  send(obj) { this.ws.send(JSON.stringify(obj)); }
  sendText(text) { this.ws.send(text); }
  sendBinary(buf) { this.ws.send(buf, { binary: true }); }

  /** Round trip: ping → pong. Proves the connection is alive and the server still reads it. */
  async ping(timeout = DEFAULT_TIMEOUT) {
    this.send({ event: 'pusher:ping', data: {} });
    return this.next('pusher:pong', { timeout });
  }

  /** Sends pusher:subscribe; resolves with subscription_succeeded or subscription_error (by channel). */
  async subscribe(channel, { auth, channel_data, extra = {}, timeout } = {}) {
    const data = { ...extra, channel };
    if (auth !== undefined) data.auth = auth;
    if (channel_data !== undefined) data.channel_data = channel_data;
    this.send({ event: 'pusher:subscribe', data });
    return this.subscriptionResult(channel, timeout);
  }

  subscriptionResult(channel, timeout) {
    return this.next(
      (m) => (m.event === 'pusher_internal:subscription_succeeded' || m.event === 'pusher:subscription_error') && m.channel === channel,
      { timeout },
    );
  }

  unsubscribe(channel) {
    this.send({ event: 'pusher:unsubscribe', data: { channel } });
  }

  close(code = 1000) {
    try { this.ws.close(code); } catch { /* ignore */ }
  }

  terminate() {
    try { this.ws.terminate(); } catch { /* ignore */ }
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Terminates every RawClient still open (call from afterEach). */
function closeAllRaw() {
  for (const c of openClients) c.terminate();
  openClients.clear();
}

module.exports = { RawClient, dataOf, sleep, closeAllRaw, DEFAULT_TIMEOUT };
