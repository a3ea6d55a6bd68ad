import { coreError, HushError } from './errors.js';
import type { ChannelLike, PusherLike } from './pusher.js';
import type { KeyStore } from './store.js';
import { Transport } from './transport.js';
import type {
  ForkDetected,
  KeyChanged,
  MailboxStatus,
  Message,
  OwnerAlarm,
  Queued,
  SafetyNumber,
} from './types.js';
import { Device, MailboxReceiver, init } from './wasm.js';

/** The client event that carries envelopes on private and presence channels. */
export const CLIENT_EVENT = 'client-hush-e2ee';
/** The event an app backend triggers envelopes under. */
export const SERVER_EVENT = 'hush-e2ee';

/** Options of {@link HushE2ee.open}. */
export interface OpenOptions {
  /** The app's pusher-js instance (or Laravel Echo's `echo.connector.pusher`). */
  pusher: PusherLike;
  /** This user's id: the one the app's user authentication endpoint signs in. */
  userId: string;
  /** Where the device state is kept (`KeyStore.indexedDb(name)`). */
  store: KeyStore;
  /** The directory's log key to pin (base64, `hush directory-key` or the `log.head` key). */
  directoryKey?: string;
  /** The directory's VRF key to pin (base64). */
  vrfKey?: string;
  /** Trust the directory keys the server presents on first use (when not pinned). Default false. */
  trustOnFirstUse?: boolean;
  /** A new device holds a new identity key (the user's first device). Default true. */
  firstDevice?: boolean;
  /** Maximum age of a tree head (ms), default the core's (24 h). */
  maxHeadAgeMs?: number;
  /**
   * The owner watch: this user's own directory entry is checked on every (re)connection and
   * this often (ms) for devices, revocations or identity changes this device did not make
   * (`owner-alarm` events), as hush-client does. Default 600000 (10 minutes); 0 turns it off.
   */
  ownerCheckIntervalMs?: number;
}

/** Options of {@link HushE2ee.restore}. */
export interface RestoreOptions extends Omit<OpenOptions, 'firstDevice'> {
  /** The blob `backup()` returned. */
  backup: Uint8Array;
  /** Its password. */
  password: string;
}

type EventMap = {
  'key-changed': KeyChanged;
  fork: ForkDetected;
  'owner-alarm': OwnerAlarm;
};

/** A mailbox event for `startMailbox`'s error callback: something came that is not shown. */
export interface MailboxProblem {
  /** The mailbox id of the item. */
  id?: number;
  /** Why it was refused (`replay`, `decrypt`, …). */
  error: HushError;
}

/**
 * One device's end-to-end encryption on an app's pusher-js connection. All
 * cryptographic and verification decisions are the WebAssembly core's
 * (hush-crypto compiled to wasm); this class moves its requests over the
 * connection, persists its state in the key store and exposes the API.
 */
export class HushE2ee {
  /** The connection's request channel. */
  readonly transport: Transport;
  /** This user's id. */
  readonly userId: string;
  private readonly device: Device;
  private readonly store: KeyStore;
  private lock: Promise<unknown> = Promise.resolve();
  private saving: Promise<void> = Promise.resolve();
  private readonly listeners = new Map<string, Set<(ev: any) => void>>();
  private authedSocket: string | null = null;
  private mailboxChain: Promise<unknown> = Promise.resolve();
  private mailboxStarted = false;

  private constructor(pusher: PusherLike, userId: string, device: Device, store: KeyStore) {
    this.transport = new Transport(pusher);
    this.userId = userId;
    this.device = device;
    this.store = store;
  }

  /**
   * Opens this browser's device for `userId`: loads it from `store`, or
   * creates its keys (on the device) when the store is empty. Publish the
   * card with {@link publish} before others can reach it.
   */
  static async open(opts: OpenOptions): Promise<HushE2ee> {
    await init();
    const saved = await opts.store.load();
    let device: Device;
    try {
      device = saved ? Device.load(saved) : Device.create(opts.userId, opts.firstDevice ?? true);
    } catch (e) {
      throw coreError(e);
    }
    if (device.userId !== opts.userId) {
      throw new HushError('invalid', `the key store holds user ${device.userId}`, 'client');
    }
    const e = new HushE2ee(opts.pusher, opts.userId, device, opts.store);
    e.configure(opts);
    await e.persist();
    e.watchOwner(opts.ownerCheckIntervalMs);
    return e;
  }

  /**
   * A new device of an existing user from the identity backup: restores the
   * identity key (Argon2id: takes a few seconds), checks it against the
   * user's directory entry, then publishes this device's card.
   */
  static async restore(opts: RestoreOptions): Promise<HushE2ee> {
    await init();
    let device: Device;
    try {
      device = Device.create(opts.userId, false);
    } catch (e) {
      throw coreError(e);
    }
    const e = new HushE2ee(opts.pusher, opts.userId, device, opts.store);
    e.configure(opts);
    await e.run(() => device.restoreIdentity(opts.backup, opts.password));
    await e.publish();
    e.watchOwner(opts.ownerCheckIntervalMs);
    return e;
  }

  /** Starts the owner watch (see `OpenOptions.ownerCheckIntervalMs`). */
  private watchOwner(everyMs = 600000): void {
    if (!everyMs) return;
    const check = () => {
      if (!this.device.card()) return; // nothing to watch before this device is published
      this.checkOwnKeys().catch(() => {
        /* retried on the next connection or tick; alarms arrive as events */
      });
    };
    this.transport.onConnected(check);
    if (this.transport.pusher.connection.state === 'connected') setTimeout(check, 0);
    const timer = setInterval(check, everyMs);
    (timer as any).unref?.();
  }

  private configure(opts: Omit<OpenOptions, 'firstDevice'>): void {
    this.sync(() => {
      if (opts.directoryKey) this.device.pinDirectoryKey(opts.directoryKey);
      if (opts.vrfKey) this.device.pinVrfKey(opts.vrfKey);
      if (opts.trustOnFirstUse !== undefined) this.device.setTrustOnFirstUse(opts.trustOnFirstUse);
      if (opts.maxHeadAgeMs !== undefined) this.device.setMaxHeadAge(opts.maxHeadAgeMs);
    });
  }

  /** This device's id (32 hex digits). */
  get deviceId(): string {
    return this.device.deviceId;
  }

  /** This device's card (base64), once published. */
  card(): string | undefined {
    return this.device.card() ?? undefined;
  }

  /** Listens for `key-changed`, `fork` or `owner-alarm`; returns the unsubscribe function. */
  on<K extends keyof EventMap>(event: K, cb: (ev: EventMap[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(cb as (ev: any) => void);
    return () => set!.delete(cb as (ev: any) => void);
  }

  /** Signs the connection in and publishes (or renews) this device's card in the key directory. */
  async publish(): Promise<string> {
    const done = await this.run(() => this.device.publish());
    return done.card;
  }

  /** Verified lookup of `users` in the key directory (identity keys, active devices). */
  async lookup(users: string[]): Promise<any[]> {
    const done = await this.run(() => this.device.lookup(users));
    return done.users;
  }

  /** Checks this user's own directory entry for devices or revocations this device did not make. */
  async checkOwnKeys(): Promise<OwnerAlarm[]> {
    const done = await this.run(() => this.device.checkOwnKeys());
    return done.alarms;
  }

  /**
   * Seals `data` (as JSON) as event `event` for every device of `users`
   * (and this user's other devices) on `channel`, under the outer event
   * `outer` (default {@link CLIENT_EVENT}): the envelope string. Refused
   * (`unverified-change`) for a verified contact whose identity changed.
   */
  async seal(channel: string, event: string, data: unknown, users: string[], outer = CLIENT_EVENT): Promise<string> {
    const done = await this.run(() =>
      this.device.seal(channel, outer, event, JSON.stringify(data), users),
    );
    return done.data;
  }

  /**
   * Sends `data` end to end encrypted to `users` as a client event on the
   * subscribed private or presence `channel`.
   */
  async send(channel: string, event: string, data: unknown, users: string[]): Promise<void> {
    const ch = this.subscribed(channel);
    const envelope = await this.seal(channel, event, data, users);
    if (!ch.trigger(CLIENT_EVENT, envelope)) {
      throw new HushError('not-connected', `could not send on ${channel}`, 'client');
    }
  }

  /**
   * Opens a received envelope (`data` of a {@link CLIENT_EVENT} or
   * {@link SERVER_EVENT} on `channel`): looks the sender up, checks the
   * card, decrypts, verifies the signature, refuses replays.
   */
  async open(channel: string, data: string, outer = CLIENT_EVENT): Promise<Message> {
    if (typeof data !== 'string') throw new HushError('not-an-envelope', 'data is not a string', 'client');
    return this.run(() => this.device.open(channel, outer, data));
  }

  /**
   * Calls `onMessage` with every envelope on the subscribed `channel` that
   * opens (client events and server events), in arrival order, and
   * `onError` with each that does not (never shown as a message).
   */
  onMessage(
    channel: string,
    onMessage: (m: Message) => void,
    onError: (e: HushError) => void = () => {},
  ): () => void {
    const ch = this.channelOf(channel);
    let chain: Promise<void> = Promise.resolve();
    const handler = (outer: string) => (data: any) => {
      chain = chain.then(() =>
        this.open(channel, data, outer).then(onMessage, (e) => onError(coreError(e))),
      );
    };
    const onClient = handler(CLIENT_EVENT);
    const onServer = handler(SERVER_EVENT);
    ch.bind(CLIENT_EVENT, onClient);
    ch.bind(SERVER_EVENT, onServer);
    return () => {
      ch.unbind(CLIENT_EVENT, onClient);
      ch.unbind(SERVER_EVENT, onServer);
    };
  }

  /** The safety number of this user and `user` (looked up and verified first). */
  async safetyNumber(user: string): Promise<SafetyNumber> {
    return this.run(() => this.device.safetyNumber(user));
  }

  /** Whether a scanned QR payload (base64 or bytes) matches `user`'s safety number. */
  compareScanned(user: string, qr: Uint8Array | string): boolean {
    const bytes = typeof qr === 'string' ? Uint8Array.from(atob(qr), (c) => c.charCodeAt(0)) : qr;
    return this.sync(() => this.device.compareScanned(user, bytes));
  }

  /** Marks `user` verified (after comparing safety numbers): a later identity change blocks sending. */
  async markVerified(user: string): Promise<void> {
    await this.run(() => this.device.markVerified(user));
  }

  /** Whether `user` is verified and still has the verified identity key. */
  isVerified(user: string): boolean {
    return this.sync(() => this.device.isVerified(user));
  }

  /** Forgets that `user` was verified. */
  async unverify(user: string): Promise<void> {
    this.sync(() => this.device.unverify(user));
    await this.persist();
  }

  /** The identity backup: the identity key sealed under `password` (Argon2id; slow by design). */
  async backup(password: string): Promise<Uint8Array> {
    return this.sync(() => this.device.backup(password));
  }

  /** New device, step 1: the card request to show the existing device (text, e.g. as a QR code). */
  async cardRequest(): Promise<string> {
    const done = await this.run(() => this.device.cardRequest());
    return done.request;
  }

  /** Existing device: approves a new device's card request; returns the card to carry back. */
  async approveDevice(request: string): Promise<string> {
    const card = this.sync(() => this.device.approveDevice(request));
    await this.persist();
    return card;
  }

  /** New device, step 2: installs the approved card and publishes it. */
  async installCard(card: string): Promise<void> {
    this.sync(() => this.device.installCard(card));
    await this.persist();
    await this.publish();
  }

  /** Silences owner alarms about these devices of this user (they are known). */
  async acknowledgeOwnDevices(devices: string[]): Promise<void> {
    this.sync(() => this.device.acknowledgeOwnDevices(devices));
    await this.persist();
  }

  // ---------------------------------------------------------------- mailbox

  /**
   * Sends `data` (as JSON) as event `event`, end to end encrypted, to every
   * device of `users` and this user's other devices through the server's
   * mailbox: devices that are offline get it when they come back.
   */
  async sendToUsers(users: string[], event: string, data: unknown): Promise<Queued> {
    const done = await this.run(() => this.device.sealForUsers(event, JSON.stringify(data), users));
    await this.deviceAuth();
    const r = await this.transport.request(done.method, done.params);
    return { messageId: r.message ?? done.messageId, devices: r.devices, online: r.online, expiresMs: r.expires_ms };
  }

  /** Where a message this device sent through the mailbox stands (`mailbox.status`). */
  async mailboxStatus(messageId: string): Promise<MailboxStatus> {
    await this.deviceAuth();
    try {
      const r = await this.transport.request('mailbox.status', { message: messageId });
      return { recipients: r.recipients, acknowledged: r.acknowledged, pending: r.pending, done: false };
    } catch (e) {
      if (e instanceof HushError && e.code === 'not_found') {
        return { recipients: 0, acknowledged: 0, pending: [], done: true };
      }
      throw e;
    }
  }

  /**
   * Starts receiving the mailbox: on every (re)connection it proves which
   * device this is, fetches what waits, then handles pushes. Each message
   * is opened, the state saved, `onMessage` called, and only then is it
   * acknowledged. Items that do not open are acknowledged and reported to
   * `onError`, never shown.
   */
  startMailbox(onMessage: (m: Message) => void, onError: (p: MailboxProblem) => void = () => {}): void {
    if (this.mailboxStarted) throw new HushError('state', 'the mailbox is started already', 'client');
    this.mailboxStarted = true;
    // The core's receiver (hush-crypto's shared reorder buffer, as hush-client): it says what to
    // open now, in each stream's sequence order; fetched items of a stream this device never
    // opened wait for the end of the cycle, a push that skips ahead waits up to 2 s.
    const rx = new MailboxReceiver();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const released = (json: string): any[] => JSON.parse(json);
    const offer = (item: any, push: boolean): any[] =>
      released(this.sync(() => rx.offer(this.device, JSON.stringify(item), push, Date.now())));
    /** Opens what the receiver released, in order; acknowledges each once handled. */
    const handle = async (entries: any[]): Promise<void> => {
      const ids: number[] = [];
      for (const e of entries) {
        if (e.rejected) {
          onError({ id: e.id, error: coreError(new Error(String(e.rejected))) });
        } else {
          try {
            const item = typeof e.item === 'string' ? e.item : JSON.stringify(e.item);
            const m = await this.run(() => this.device.openMailbox(item));
            onMessage(m);
          } catch (err) {
            const he = coreError(err);
            if (he.source !== 'core') throw he; // transport trouble: not acknowledged, fetched again
            onError({ id: e.id, error: he }); // refused (replay, decrypt, …): acknowledged, never shown
          }
        }
        if (typeof e.id === 'number') ids.push(e.id);
      }
      if (ids.length) await this.transport.request('mailbox.ack', { ids });
    };
    const arm = (): void => {
      if (timer) clearTimeout(timer);
      const at = rx.nextDeadline();
      if (at === undefined || at === null) return;
      const wait = at > 1e12 ? at - Date.now() : at;
      timer = setTimeout(() => {
        this.mailbox(() => handle(released(rx.expire(Date.now()))))
          .catch((e) => onError({ error: coreError(e) }))
          .finally(arm);
      }, Math.max(0, wait) + 5);
    };
    const sync = () =>
      this.mailbox(async () => {
        await this.deviceAuth();
        let after = 0;
        for (let page = 0; page < 100; page++) {
          const r = await this.transport.request('mailbox.fetch', { after, limit: 100 });
          for (const item of r.messages ?? []) {
            await handle(offer(item, false));
            after = Math.max(after, item.id);
          }
          if (!r.more) break;
        }
        await handle(released(rx.flush()));
      })
        .catch((e) => onError({ error: coreError(e) }))
        .finally(arm);
    this.transport.onMailbox((item) => {
      this.mailbox(() => handle(offer(item, true)))
        .catch((e) => onError({ id: item?.id, error: coreError(e) }))
        .finally(arm);
    });
    this.transport.onConnected(() => {
      this.authedSocket = null;
      void sync();
    });
    if (this.transport.pusher.connection.state === 'connected') void sync();
  }

  /** Proves on the current connection which device this is (`device.challenge`, `device.auth`). */
  async deviceAuth(): Promise<void> {
    await this.transport.signin(this.userId);
    const socket = this.transport.socketId();
    if (this.authedSocket === socket) return;
    const challenge = await this.transport.request('device.challenge');
    const params = JSON.parse(
      this.sync(() => this.device.deviceAuth(challenge.nonce, this.transport.pusher.key, socket)),
    );
    await this.transport.request('device.auth', params);
    this.authedSocket = socket;
  }

  // ---------------------------------------------------------------- internals

  private mailbox<T>(f: () => Promise<T>): Promise<T> {
    const p = this.mailboxChain.then(f, f);
    this.mailboxChain = p.catch(() => undefined);
    return p;
  }

  /** Runs one core operation to completion, one at a time, then saves and dispatches events. */
  private run(makeOp: () => any): Promise<any> {
    const p = this.lock.then(() => this.drive(makeOp));
    this.lock = p.catch(() => undefined);
    return p;
  }

  private async drive(makeOp: () => any): Promise<any> {
    let op: any;
    try {
      op = makeOp();
    } catch (e) {
      throw coreError(e);
    }
    try {
      let s = this.step(op, undefined);
      while (s.request) {
        await this.transport.signin(this.userId);
        const result = await this.transport.request(s.request.method, s.request.params);
        s = this.step(op, JSON.stringify(result));
      }
      return s.done;
    } finally {
      try {
        op.free();
      } catch {
        /* spent */
      }
      await this.persist();
    }
  }

  private step(op: any, result: string | undefined): any {
    try {
      return JSON.parse(this.device.step(op, result, Date.now()));
    } catch (e) {
      throw coreError(e);
    } finally {
      this.dispatch();
    }
  }

  private sync<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw coreError(e);
    } finally {
      this.dispatch();
    }
  }

  private dispatch(): void {
    let events: any[];
    try {
      events = JSON.parse(this.device.takeEvents());
    } catch {
      return;
    }
    for (const ev of events) {
      for (const cb of this.listeners.get(ev.type) ?? []) {
        try {
          cb(ev);
        } catch {
          /* a listener's error is not the core's */
        }
      }
    }
  }

  /** Saves the device state (encrypted by the key store), in order. */
  private persist(): Promise<void> {
    const state = this.device.save();
    const p = this.saving.then(() => this.store.save(state));
    this.saving = p.catch(() => undefined);
    return p;
  }

  private channelOf(name: string): ChannelLike {
    const ch = this.transport.pusher.channel(name);
    if (!ch) throw new HushError('invalid', `not subscribed to ${name}`, 'client');
    return ch;
  }

  private subscribed(name: string): ChannelLike {
    return this.channelOf(name);
  }
}
