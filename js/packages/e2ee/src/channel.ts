import { coreError, HushError } from './errors.js';
import type { PusherLike } from './pusher.js';
import { ChannelCrypto } from './wasm.js';

/** The client event a sealed event travels as (docs/E2EE-CHANNELS.md §2). */
export const SEALED_CLIENT_EVENT = 'client-hush-sealed';

/** What the app's channel authorization endpoint answers for a `private-encrypted-` channel. */
export interface EncryptedAuth {
  auth: string;
  /** The channel key of `epoch` (base64). */
  shared_secret: string;
  /** The key epoch (absent = 0, Pusher's key). */
  epoch?: number;
}

/** Options of {@link EncryptedChannel.subscribe}. */
export interface EncryptedChannelOptions {
  /** The app's pusher-js instance (or `echo.connector.pusher`). */
  pusher: PusherLike;
  /** A `private-encrypted-` channel. */
  channel: string;
  /** The app's channel authorization endpoint (POST socket_id, channel_name; default `/pusher/auth`). */
  endpoint?: string;
  /** Or a function that authorizes (e.g. with the app's own HTTP client). */
  authorize?: (socketId: string, channel: string) => Promise<EncryptedAuth>;
  /** How long older epochs' keys stay usable after a newer one arrives (ms, default 60000). */
  epochGraceMs?: number;
  /** How old a sealed event may be (ms, default 300000). */
  sealedMaxAgeMs?: number;
}

/** An event that opened on an encrypted channel. */
export interface ChannelEvent {
  /** The event name (for sealed events, the hidden inner name). */
  event: string;
  /** The plaintext, parsed as JSON (else the string). */
  data: any;
  /** The key epoch it was sealed under. */
  epoch: number;
  /** Sealed events: the sender's signed sequence and time. */
  sealed?: { sender: string; seq: number; messageId: string; timestampMs: number };
}

/**
 * A `private-encrypted-` channel with hush's extensions (docs/E2EE-CHANNELS.md): key epochs
 * (a keyring; an event of a newer epoch makes it re-authorize once), sealed events (hidden
 * event names, signed sequence numbers, replay window) and encrypted client events. All
 * decryption and checks are the wasm core's (`ChannelCrypto`, hush-client's channel logic);
 * this class authorizes, subscribes over the existing pusher-js connection (pusher-js's own
 * encrypted channels need tweetnacl and know neither epochs nor sealed events) and dispatches.
 */
export class EncryptedChannel {
  readonly name: string;
  private readonly pusher: PusherLike;
  private readonly crypto: ChannelCrypto;
  private readonly opts: EncryptedChannelOptions;
  private readonly listeners = new Set<(ev: ChannelEvent) => void>();
  private readonly errorListeners = new Set<(e: HushError) => void>();
  private subscribed: Promise<void> | null = null;
  private resolveSubscribed: (() => void) | null = null;
  private newestEpoch = -1;
  private readonly onMessageBound = (ev: any) => this.onFrame(ev);
  private readonly onStateBound = (s: any) => {
    if (s && s.current === 'connected') void this.join().catch((e) => this.fail(e));
  };

  private constructor(opts: EncryptedChannelOptions) {
    if (!opts.channel.startsWith('private-encrypted-')) {
      throw new HushError('invalid', 'not a private-encrypted- channel', 'client');
    }
    this.name = opts.channel;
    this.pusher = opts.pusher;
    this.opts = opts;
    try {
      this.crypto = new ChannelCrypto(opts.channel, opts.epochGraceMs ?? 60000, opts.sealedMaxAgeMs ?? 300000);
    } catch (e) {
      throw coreError(e);
    }
  }

  /** Authorizes and subscribes; resolves once the server confirmed the subscription. */
  static async subscribe(opts: EncryptedChannelOptions): Promise<EncryptedChannel> {
    const ch = new EncryptedChannel(opts);
    ch.pusher.connection.bind('message', ch.onMessageBound);
    ch.pusher.connection.bind('state_change', ch.onStateBound);
    if (ch.pusher.connection.state === 'connected') await ch.join();
    else await new Promise<void>((resolve) => { ch.resolveSubscribed = resolve; });
    return ch;
  }

  /** Calls `cb` with every event that opens, `onError` with every one that does not. */
  on(cb: (ev: ChannelEvent) => void, onError?: (e: HushError) => void): () => void {
    this.listeners.add(cb);
    if (onError) this.errorListeners.add(onError);
    return () => {
      this.listeners.delete(cb);
      if (onError) this.errorListeners.delete(onError);
    };
  }

  /** Sends a sealed client event (`client-hush-sealed`) under the newest key. */
  send(event: string, data: unknown): void {
    let sealed: string;
    try {
      sealed = this.crypto.seal(event, JSON.stringify(data), Date.now());
    } catch (e) {
      throw coreError(e);
    }
    if (!this.pusher.send_event(SEALED_CLIENT_EVENT, sealed, this.name)) {
      throw new HushError('not-connected', `could not send on ${this.name}`, 'client');
    }
  }

  /** Unsubscribes and stops listening. */
  unsubscribe(): void {
    this.pusher.connection.unbind('message', this.onMessageBound);
    this.pusher.connection.unbind('state_change', this.onStateBound);
    this.pusher.send_event('pusher:unsubscribe', { channel: this.name });
  }

  private async authorize(): Promise<void> {
    const socketId = this.pusher.connection.socket_id;
    if (!socketId) throw new HushError('not-connected', 'no socket id', 'client');
    let a: EncryptedAuth;
    if (this.opts.authorize) {
      a = await this.opts.authorize(socketId, this.name);
    } else {
      const r = await fetch(this.opts.endpoint ?? '/pusher/auth', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ socket_id: socketId, channel_name: this.name }).toString(),
      });
      if (!r.ok) throw new HushError('forbidden', `channel authorization answered ${r.status}`, 'client');
      a = await r.json();
    }
    if (!a || typeof a.auth !== 'string' || typeof a.shared_secret !== 'string') {
      throw new HushError('forbidden', 'the authorization carries no shared_secret', 'client');
    }
    const epoch = a.epoch ?? 0;
    try {
      this.crypto.installKey(epoch, a.shared_secret, Date.now());
    } catch (e) {
      throw coreError(e);
    }
    this.newestEpoch = Math.max(this.newestEpoch, epoch);
    this.lastAuth = a.auth;
  }

  private lastAuth = '';

  private async join(): Promise<void> {
    await this.authorize();
    this.subscribed = new Promise<void>((resolve) => {
      const prev = this.resolveSubscribed;
      this.resolveSubscribed = () => {
        resolve();
        prev?.();
      };
    });
    this.pusher.send_event('pusher:subscribe', { channel: this.name, auth: this.lastAuth });
    await this.subscribed;
  }

  private onFrame(ev: any): void {
    if (!ev || ev.channel !== this.name) return;
    const name: string = ev.event;
    if (name === 'pusher_internal:subscription_succeeded') {
      this.resolveSubscribed?.();
      this.resolveSubscribed = null;
      return;
    }
    if (name.startsWith('pusher:') || name.startsWith('pusher_internal:')) return;
    const data = typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data);
    void this.openEvent(name, data, true);
  }

  private async openEvent(name: string, data: string, mayReauthorize: boolean): Promise<void> {
    let out: ChannelEvent;
    try {
      out = JSON.parse(this.crypto.open(name, data, Date.now()));
      if (typeof out.data === 'string') {
        try {
          out.data = JSON.parse(out.data);
        } catch {
          /* not JSON: the string itself */
        }
      }
    } catch (e) {
      const err = coreError(e);
      // A newer epoch than this device holds: re-authorize once (as pusher-js does), then retry.
      if (mayReauthorize && err.code === 'no-key') {
        try {
          await this.authorize();
        } catch (e2) {
          return this.fail(e2);
        }
        return this.openEvent(name, data, false);
      }
      return this.fail(err);
    }
    for (const l of this.listeners) l(out);
  }

  private fail(e: unknown): void {
    const err = coreError(e);
    for (const l of this.errorListeners) l(err);
  }
}
