// The clinic: two people, one presence channel, every message end-to-end encrypted with
// @hush/e2ee. The backend (../server.mjs) only signs pusher-js's auth requests.
import { EncryptedChannel, HushE2ee, HushError, KeyStore, init } from '@hush/e2ee';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const MAX_FILE = 24 * 1024;
// A suite 1 envelope must fit Pusher's 10 KiB event limit (docs/E2EE-SUITE1.md §4.4): a file
// travels as parts of PART bytes, each sealed and signed like a message, and is shown once
// every part arrived and the SHA-256 the sender put in every part matches.
const PART = 2560;

const clinic = (window.clinic = { ready: false, received: [], errors: [], sent: [], events: [] });

async function main() {
  const cfg = await (await fetch('/api/config')).json();
  if (!cfg.user) return showLogin();
  const me = cfg.user;
  const peer = params.get('peer') || (me === 'doctor' ? 'patient' : 'doctor');
  Object.assign(clinic, { me, peer, cfg });
  $('whoami').textContent = `signed in as ${me}`;
  for (const el of document.querySelectorAll('.me')) el.textContent = me;

  const options = {
    wsHost: cfg.wsHost, wsPort: cfg.wsPort, forceTLS: false, enabledTransports: ['ws'],
    disableStats: true, cluster: 'mt1',
    channelAuthorization: { endpoint: '/pusher/auth', transport: 'ajax' },
    userAuthentication: { endpoint: '/pusher/user-auth', transport: 'ajax' },
  };
  let pusher;
  if (params.get('echo')) {
    // Laravel Echo's pusher connector: @hush/e2ee rides on echo.connector.pusher.
    const EchoClass = window.Echo.default ?? window.Echo;
    const echo = new EchoClass({ broadcaster: 'pusher', key: cfg.key, Pusher: window.Pusher, ...options });
    clinic.echo = echo;
    pusher = echo.connector.pusher;
  } else {
    pusher = new window.Pusher(cfg.key, options);
  }
  clinic.pusher = pusher;
  pusher.connection.bind('state_change', ({ current }) => {
    $('conn').textContent = current;
    $('conn').className = `pill ${current === 'connected' ? 'ok' : 'bad'}`;
  });

  await init();
  const store = await KeyStore.indexedDb(`hush-clinic-${me}`);
  clinic.store = store;
  const opts = { pusher, userId: me, store, directoryKey: cfg.directoryKey, vrfKey: cfg.vrfKey };
  if (await store.load()) return start(await HushE2ee.open(opts));
  showSetup(opts);
}

function showLogin() {
  $('login').hidden = false;
  const login = async (user) => {
    const r = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });
    if (r.ok) location.reload();
  };
  $('login-doctor').onclick = () => login('doctor');
  $('login-patient').onclick = () => login('patient');
  $('login-other').onsubmit = (ev) => { ev.preventDefault(); login($('login-name').value.trim()); };
  clinic.ready = 'login';
}

function showSetup(opts) {
  $('setup').hidden = false;
  clinic.ready = 'setup';
  const fail = (e) => addError(e);
  $('setup-new').onclick = async () => {
    try {
      const e2ee = await HushE2ee.open({ ...opts, firstDevice: true });
      await e2ee.publish();
      $('setup').hidden = true;
      start(e2ee);
    } catch (e) { fail(e); }
  };
  let linking;
  $('setup-link').onclick = async () => {
    try {
      linking = await HushE2ee.open({ ...opts, firstDevice: false });
      $('card-request').value = await linking.cardRequest();
    } catch (e) { fail(e); }
  };
  $('install-card-btn').onclick = async () => {
    try {
      await linking.installCard($('install-card').value.trim());
      $('setup').hidden = true;
      start(linking);
    } catch (e) { fail(e); }
  };
  $('restore-btn').onclick = async () => {
    try {
      const blob = Uint8Array.from(atob($('restore-blob').value.trim()), (c) => c.charCodeAt(0));
      const e2ee = await HushE2ee.restore({ ...opts, backup: blob, password: $('restore-password').value });
      $('setup').hidden = true;
      start(e2ee);
    } catch (e) { fail(e); }
  };
}

async function start(e2ee) {
  const { me, peer, pusher } = clinic;
  clinic.e2ee = e2ee;
  $('app').hidden = false;
  $('peer').textContent = peer;
  for (const el of document.querySelectorAll('.peer-name')) el.textContent = peer;
  $('device-id').textContent = e2ee.deviceId;

  // Key changes of the contact: a warning, and sending to a verified contact waits until the
  // safety number is compared again (the wasm core itself refuses to seal to a verified contact
  // whose identity key changed: `unverified-change`).
  let blocked = false;
  e2ee.on('key-changed', (ev) => {
    clinic.events.push(ev);
    if (ev.user !== peer) return;
    const what = ev.identityChanged
      ? `${peer}'s identity key changed (new safety number)`
      : `${peer} added a device (${ev.added.map((d) => d.slice(0, 8)).join(', ')})`;
    if (ev.wasVerified) blocked = true;
    setVerified();
    showWarning(`${what}. ${ev.wasVerified ? 'Sending is paused until you compare the safety number again.' : 'Compare the safety number again.'}`);
    refreshSafety();
  });
  e2ee.on('fork', (ev) => { clinic.events.push(ev); showWarning('The server showed this device a forked key directory.'); });
  e2ee.on('owner-alarm', (ev) => { clinic.events.push(ev); showWarning(`Alarm about your own keys: ${ev.kind}`); });

  const channelName = clinic.cfg.channel;
  const channel = clinic.echo
    ? (clinic.echo.join(channelName.replace(/^presence-/, '')), pusher.channel(channelName))
    : pusher.subscribe(channelName);
  const online = new Set();
  const setPresence = () => {
    const on = online.has(peer);
    clinic.peerOnline = on;
    $('presence').textContent = on ? 'online' : 'offline';
    $('presence').className = `pill ${on ? 'ok' : 'bad'}`;
  };
  channel.bind('pusher:subscription_succeeded', (members) => {
    online.clear();
    members.each((m) => online.add(m.id));
    setPresence();
    clinic.subscribed = true;
  });
  channel.bind('pusher:member_added', (m) => { online.add(m.id); setPresence(); });
  channel.bind('pusher:member_removed', (m) => { online.delete(m.id); setPresence(); });

  e2ee.onMessage(channelName, (m) => addMessage(m, 'live'), (err) => addError(err));
  e2ee.startMailbox((m) => addMessage(m, 'mailbox'), (p) => addError(p.error));

  const refreshSafety = async () => {
    for (let i = 0; i < 600; i++) {
      try {
        const sn = await e2ee.safetyNumber(peer);
        $('safety').textContent = sn.grouped;
        clinic.safety = sn.digits;
        break;
      } catch (e) {
        if (!(e instanceof HushError) || !['unknown-user', 'no-devices'].includes(e.code)) { addError(e); break; }
        $('safety').textContent = `(${peer} has no keys yet)`;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    setVerified();
  };
  const setVerified = () => {
    const v = e2ee.isVerified(peer) && !blocked;
    $('verified').textContent = v ? 'verified' : blocked ? 'keys changed' : 'not verified';
    $('verified').className = `pill ${v ? 'ok' : blocked ? 'bad' : ''}`;
  };
  $('verify').onclick = async () => {
    try {
      await e2ee.markVerified(peer);
      blocked = false;
      $('warning').hidden = true;
      setVerified();
    } catch (e) { addError(e); }
  };

  $('approve').onclick = async () => {
    try { $('approved-card').value = await e2ee.approveDevice($('approve-input').value.trim()); } catch (e) { addError(e); }
  };
  $('backup').onclick = async () => {
    try {
      const blob = await e2ee.backup($('backup-password').value);
      $('backup-out').value = btoa(String.fromCharCode(...blob));
    } catch (e) { addError(e); }
  };

  $('compose').onsubmit = async (ev) => {
    ev.preventDefault();
    const text = $('text').value;
    const file = $('file').files[0];
    let data;
    let parts;
    if (file) {
      if (file.size > MAX_FILE) return status(`attachments are limited to ${MAX_FILE} bytes`);
      const bytes = new Uint8Array(await file.arrayBuffer());
      data = { kind: 'file', name: file.name, type: file.type, size: file.size, b64: toB64(bytes), text };
      parts = await fileParts(bytes, data);
    } else {
      if (!text) return;
      data = { kind: 'text', text };
    }
    try {
      // Look the contact up first: a change of their keys is announced (key-changed) before
      // anything is sealed to them.
      await e2ee.lookup([peer]);
      if (blocked) return status(`Not sent: ${peer}'s keys changed. Compare the safety number, then mark verified.`, 'blocked');
      const li = addOwn(data);
      const payloads = parts ?? [data];
      if (clinic.peerOnline) {
        for (const [i, p] of payloads.entries()) {
          if (i) await new Promise((r) => setTimeout(r, 120)); // under the client-event rate limit
          await e2ee.send(channelName, 'message', p, [peer]);
        }
        setState(li, 'sent', 'sent');
      } else {
        const ids = [];
        for (const p of payloads) ids.push((await e2ee.sendToUsers([peer], 'message', p)).messageId);
        setState(li, 'queued', `queued — delivered when the ${peer} is online`);
        watchDelivery(e2ee, ids, li);
      }
      $('text').value = '';
      $('file').value = '';
      status('');
    } catch (e) {
      $('file').value = '';
      if (e instanceof HushError && e.code === 'unverified-change') {
        blocked = true;
        setVerified();
        showWarning(`${peer}'s identity key changed. Sending is paused until you compare the safety number again.`);
        return status(`Not sent: ${e.message}`, 'blocked');
      }
      addError(e);
    }
  };

  startNoticeBoard().catch(addError);
  clinic.ready = true;
  refreshSafety(); // waits (in the background) until the contact has keys
}

/** The notice board: hush's encrypted channel (suite 0 with key epochs, sealed client events). */
async function startNoticeBoard() {
  const { pusher, me } = clinic;
  clinic.notices = [];
  const enc = await EncryptedChannel.subscribe({ pusher, channel: clinic.cfg.encryptedChannel, endpoint: '/pusher/auth' });
  clinic.enc = enc;
  enc.on((ev) => {
    clinic.notices.push(ev);
    const li = document.createElement('li');
    const how = ev.sealed ? `sealed #${ev.sealed.seq}` : 'from the backend';
    li.textContent = `${ev.data && ev.data.from ? ev.data.from : '?'}: ${ev.data && ev.data.text} (${ev.event}, epoch ${ev.epoch}, ${how})`;
    $('notices').append(li);
  }, addError);
  $('notice-form').onsubmit = (ev) => {
    ev.preventDefault();
    try {
      enc.send('notice', { text: $('notice-text').value, from: me });
      $('notice-text').value = '';
    } catch (e) { addError(e); }
  };
  $('notice-server').onclick = async () => {
    const r = await fetch('/api/notice', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: $('notice-text').value }) });
    if (!r.ok) addError(new Error(`notice: ${r.status}`));
    $('notice-text').value = '';
  };
  clinic.noticeReady = true;
}

async function watchDelivery(e2ee, messageIds, li) {
  const waiting = new Set(messageIds);
  for (let i = 0; i < 3600 && waiting.size; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    for (const id of [...waiting]) {
      try {
        const st = await e2ee.mailboxStatus(id);
        if (st.done || !st.pending.some((p) => p.user === clinic.peer)) waiting.delete(id);
      } catch { /* retried */ }
    }
  }
  if (!waiting.size) setState(li, 'delivered', 'delivered');
}

async function sha256(bytes) {
  return toB64(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
}

/** The parts of a file (each sealed as its own message). */
async function fileParts(bytes, meta) {
  const id = toB64(crypto.getRandomValues(new Uint8Array(12)));
  const count = Math.max(1, Math.ceil(bytes.length / PART));
  const digest = await sha256(bytes);
  return Array.from({ length: count }, (_, index) => ({
    kind: 'file-part', id, index, count, name: meta.name, type: meta.type, size: meta.size,
    sha256: digest, text: index === 0 ? meta.text : '', b64: toB64(bytes.subarray(index * PART, (index + 1) * PART)),
  }));
}

const partial = new Map(); // sender/file id → parts received

/** Collects file parts; returns the whole file message once complete and intact. */
async function assemble(m) {
  const d = m.data;
  if (!Number.isInteger(d.index) || !Number.isInteger(d.count) || d.count < 1 || d.count > 64 || d.index >= d.count) {
    throw new HushError('bad-attachment', 'malformed file part', 'client');
  }
  const key = `${m.senderUser}/${m.senderDevice}/${d.id}`;
  let f = partial.get(key);
  if (!f) partial.set(key, (f = { parts: new Array(d.count), have: 0, first: d }));
  if (f.first.count !== d.count || f.first.sha256 !== d.sha256) throw new HushError('bad-attachment', 'inconsistent file parts', 'client');
  if (!f.parts[d.index]) f.have += 1;
  f.parts[d.index] = Uint8Array.from(atob(d.b64), (c) => c.charCodeAt(0));
  if (f.have < d.count) return null;
  partial.delete(key);
  const bytes = new Uint8Array(f.parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of f.parts) { bytes.set(p, o); o += p.length; }
  if (bytes.length !== f.first.size || (await sha256(bytes)) !== f.first.sha256) {
    throw new HushError('bad-attachment', 'the file does not match its digest', 'client');
  }
  const { name, type, size, text } = f.first;
  return { ...m, data: { kind: 'file', name, type, size, text, b64: toB64(bytes) } };
}

function toB64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function status(text, kind = '') {
  $('send-status').textContent = text;
  $('send-status').dataset.kind = kind;
}

function showWarning(text) {
  $('warning').textContent = text;
  $('warning').hidden = false;
}

function render(li, data) {
  const body = document.createElement('span');
  body.className = 'body';
  if (data && data.kind === 'file') {
    const a = document.createElement('a');
    const bytes = Uint8Array.from(atob(data.b64), (c) => c.charCodeAt(0));
    // Never the sender's content type: a blob of type text/html opened in a tab would run as
    // this origin's script (and could use the key store).
    a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    a.download = data.name;
    a.textContent = `attachment: ${data.name} (${data.size} bytes)`;
    body.append(a);
    if (data.text) body.append(` ${data.text}`);
  } else {
    body.textContent = data && typeof data === 'object' ? data.text : String(data);
  }
  li.append(body);
}

function addOwn(data) {
  const li = document.createElement('li');
  li.className = 'mine';
  render(li, data);
  const st = document.createElement('span');
  st.className = 'state';
  li.append(st);
  $('messages').append(li);
  clinic.sent.push({ data, li });
  return li;
}

function setState(li, state, text) {
  li.dataset.state = state;
  li.querySelector('.state').textContent = text;
}

let assembling = Promise.resolve();
function addMessage(m, via) {
  if (m.data && m.data.kind === 'file-part') {
    assembling = assembling.then(() => assemble(m)).then((whole) => whole && showMessage(whole, via), addError);
    return;
  }
  showMessage(m, via);
}

function showMessage(m, via) {
  clinic.received.push({ ...m, via });
  const li = document.createElement('li');
  li.dataset.sender = m.senderUser;
  li.dataset.via = via;
  const who = document.createElement('b');
  who.textContent = `${m.senderUser}${m.verifiedSender ? ' ✔' : ''}: `;
  li.append(who);
  render(li, m.data);
  if (via === 'mailbox') {
    const s = document.createElement('span');
    s.className = 'state';
    s.textContent = 'via mailbox';
    li.append(s);
  }
  $('messages').append(li);
}

function addError(e) {
  const err = e instanceof HushError ? e : new HushError('error', String(e && e.message ? e.message : e), 'client');
  clinic.errors.push({ code: err.code, message: err.message });
  const li = document.createElement('li');
  li.dataset.code = err.code;
  li.textContent = `Refused: ${err.message}`;
  $('errors').append(li);
}

main().catch((e) => { addError(e); clinic.ready = 'failed'; });
