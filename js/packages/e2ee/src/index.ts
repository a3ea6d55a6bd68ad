/**
 * @hush/e2ee: end-to-end encryption for pusher-js / Laravel Echo apps on a
 * hush server. See README.md.
 */
export { init } from './wasm.js';
export type { InitOptions } from './wasm.js';
export { HushE2ee, CLIENT_EVENT, SERVER_EVENT } from './e2ee.js';
export type { OpenOptions, RestoreOptions, MailboxProblem } from './e2ee.js';
export { EncryptedChannel, SEALED_CLIENT_EVENT } from './channel.js';
export type { ChannelEvent, EncryptedAuth, EncryptedChannelOptions } from './channel.js';
export { KeyStore } from './store.js';
export type { SealedState } from './store.js';
export { HushError } from './errors.js';
export { Transport } from './transport.js';
export type { PusherLike, ChannelLike } from './pusher.js';
export type * from './types.js';
