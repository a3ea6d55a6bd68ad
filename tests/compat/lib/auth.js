'use strict';
// Signing helpers written from PROTOCOL.md §6 and §12.2 (independent of the pusher SDK, so the
// SDK and these helpers cross-check each other), plus a raw HTTP API client for error cases.

const crypto = require('node:crypto');

function hmacHex(secret, text) {
  return crypto.createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}

function md5Hex(body) {
  return crypto.createHash('md5').update(body, 'utf8').digest('hex');
}

/** `{key}:{hex}` over an arbitrary string to sign. */
function authFor(app, stringToSign) {
  return `${app.key}:${hmacHex(app.secret, stringToSign)}`;
}

/** Private / encrypted / private-cache channel auth: `{socket_id}:{channel}`. */
function privateAuth(app, socketId, channel) {
  return authFor(app, `${socketId}:${channel}`);
}

/**
 * Presence channel auth. `channelData` may be an object (serialized with JSON.stringify)
 * or an exact string. Returns { auth, channel_data }.
 */
function presenceAuth(app, socketId, channel, channelData) {
  const cd = typeof channelData === 'string' ? channelData : JSON.stringify(channelData);
  return { auth: authFor(app, `${socketId}:${channel}:${cd}`), channel_data: cd };
}

/** Sign-in: `{socket_id}::user::{user_data}`; `userData` object or exact string. */
function userAuth(app, socketId, userData) {
  const ud = typeof userData === 'string' ? userData : JSON.stringify(userData);
  return { auth: authFor(app, `${socketId}::user::${ud}`), user_data: ud };
}

/**
 * Builds the signed query string for an HTTP API request (§12.2).
 * params: extra query params (values unescaped in the string to sign, escaped in the URL).
 * tamper: { timestamp, key, version, bodyMd5 (string|null to omit), signature, omitSignature }
 */
function signedQuery(app, method, path, { params = {}, body, tamper = {} } = {}) {
  const q = {
    auth_key: tamper.key !== undefined ? tamper.key : app.key,
    auth_timestamp: String(tamper.timestamp !== undefined ? tamper.timestamp : Math.floor(Date.now() / 1000)),
    auth_version: tamper.version !== undefined ? tamper.version : '1.0',
    ...params,
  };
  if (body !== undefined && body !== '') q.body_md5 = md5Hex(body);
  if (tamper.bodyMd5 !== undefined) {
    if (tamper.bodyMd5 === null) delete q.body_md5;
    else q.body_md5 = tamper.bodyMd5;
  }
  const keys = Object.keys(q).sort();
  const toSign = `${method.toUpperCase()}\n${path}\n${keys.map((k) => `${k.toLowerCase()}=${q[k]}`).join('&')}`;
  const secret = tamper.secret !== undefined ? tamper.secret : app.secret;
  const sig = tamper.signature !== undefined ? tamper.signature : hmacHex(secret, toSign);
  const parts = keys.map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(q[k])}`);
  if (!tamper.omitSignature) parts.push(`auth_signature=${sig}`);
  return { query: parts.join('&'), stringToSign: toSign, signature: sig };
}

/**
 * Raw signed HTTP API request. `body` may be an object (JSON-encoded) or an exact string.
 * Returns { status, headers, text, json } (json undefined when the body does not parse).
 */
async function apiRequest(srv, app, method, path, { params, body, tamper, rawQuery, headers = {}, timeout = 5000 } = {}) {
  const bodyText = body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body));
  const query = rawQuery !== undefined ? rawQuery : signedQuery(app, method, path, { params, body: bodyText, tamper }).query;
  const url = `${srv.httpBase()}${path}${query ? `?${query}` : ''}`;
  const h = { ...headers };
  if (bodyText !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
    h['content-type'] = 'application/json';
  }
  const res = await fetch(url, { method, body: bodyText, headers: h, signal: AbortSignal.timeout(timeout) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

module.exports = { hmacHex, md5Hex, authFor, privateAuth, presenceAuth, userAuth, signedQuery, apiRequest };
