import { HushError } from './errors.js';
import type { PusherLike } from './pusher.js';

/** Requests in flight per connection that the server accepts (PROTOCOL-EXT §1). */
const MAX_IN_FLIGHT = 8;

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * `hush:request` / `hush:response` over an existing pusher-js connection
 * (docs/PROTOCOL-EXT.md §1), and the `hush:mailbox` pushes. No crypto here.
 */
export class Transport {
  readonly pusher: PusherLike;
  private next = 1;
  private readonly prefix = Math.random().toString(36).slice(2, 8);
  private readonly pending = new Map<string, Pending>();
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly mailboxListeners = new Set<(item: any) => void>();
  private readonly connectedListeners = new Set<() => void>();
  /** Milliseconds a request may take before it fails with `timeout`. */
  timeoutMs = 15000;

  constructor(pusher: PusherLike) {
    this.pusher = pusher;
    pusher.connection.bind('message', (ev: any) => this.onMessage(ev));
    pusher.connection.bind('state_change', (s: any) => {
      if (s && s.current !== 'connected') this.failAll('connection lost');
      if (s && s.current === 'connected') for (const l of this.connectedListeners) l();
    });
  }

  /** Calls `listener` on every (re)connection. */
  onConnected(listener: () => void): () => void {
    this.connectedListeners.add(listener);
    return () => this.connectedListeners.delete(listener);
  }

  /** Calls `listener` with each `hush:mailbox` push (the parsed `{envelope, id, sent_ms}`). */
  onMailbox(listener: (item: any) => void): () => void {
    this.mailboxListeners.add(listener);
    return () => this.mailboxListeners.delete(listener);
  }

  /** Resolves when the connection is up. */
  async connected(timeoutMs = this.timeoutMs): Promise<void> {
    if (this.pusher.connection.state === 'connected') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new HushError('timeout', 'not connected', 'client'));
      }, timeoutMs);
      const off = this.onConnected(() => {
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }

  /** The socket id of the current connection. */
  socketId(): string {
    const id = this.pusher.connection.socket_id;
    if (!id) throw new HushError('not-connected', 'no socket id', 'client');
    return id;
  }

  /**
   * Signs the connection in (`pusher.signin()`, through the app's user
   * authentication endpoint) and resolves once it is signed in as `userId`.
   */
  async signin(userId: string, timeoutMs = this.timeoutMs): Promise<void> {
    await this.connected(timeoutMs);
    const p = this.pusher;
    if (p.user?.user_data?.id === userId) return;
    p.signin();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (p.user?.signinDonePromise) await withTimeout(p.user.signinDonePromise, deadline - Date.now());
      if (p.user?.user_data?.id === userId) return;
      await sleep(50);
    }
    throw new HushError('not_signed_in', `could not sign in as ${userId}`, 'client');
  }

  /** Sends one request and resolves with its `result` (or rejects with a server `HushError`). */
  async request(method: string, params?: unknown): Promise<any> {
    await this.connected();
    while (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight += 1;
    const id = `${this.prefix}-${this.next++}`;
    try {
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new HushError('timeout', `${method} got no answer`, 'client'));
        }, this.timeoutMs);
        this.pending.set(id, { resolve, reject, timer });
        const data: Record<string, unknown> = { id, method };
        if (params !== undefined) data.params = params;
        if (!this.pusher.send_event('hush:request', data)) {
          clearTimeout(timer);
          this.pending.delete(id);
          reject(new HushError('not-connected', `${method} not sent`, 'client'));
        }
      });
    } finally {
      this.inFlight -= 1;
      const w = this.waiting.shift();
      if (w) w();
    }
  }

  private onMessage(ev: any): void {
    if (!ev || ev.channel) return;
    if (ev.event === 'hush:response') {
      const data = typeof ev.data === 'string' ? safeParse(ev.data) : ev.data;
      const p = data && this.pending.get(data.id);
      if (!p) return;
      this.pending.delete(data.id);
      clearTimeout(p.timer);
      if (data.error) {
        p.reject(new HushError(String(data.error.code), String(data.error.message ?? ''), 'server'));
      } else {
        p.resolve(data.result);
      }
    } else if (ev.event === 'hush:mailbox') {
      const item = typeof ev.data === 'string' ? safeParse(ev.data) : ev.data;
      if (item) for (const l of this.mailboxListeners) l(item);
    }
  }

  private failAll(why: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new HushError('not-connected', why, 'client'));
    }
  }
}

function safeParse(s: string): any {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, sleep(Math.max(0, ms)).then(() => undefined)]);
}
