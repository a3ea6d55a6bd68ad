/**
 * The part of pusher-js (8.x) this package uses, described structurally so
 * that any pusher-js instance fits, including Laravel Echo's
 * `echo.connector.pusher`.
 */
export interface PusherLike {
  key: string;
  connection: {
    socket_id?: string;
    state: string;
    bind(event: string, cb: (data: any) => void): unknown;
    unbind(event: string, cb?: (data: any) => void): unknown;
  };
  send_event(event: string, data: unknown, channel?: string): boolean;
  channel(name: string): ChannelLike | undefined | null;
  signin(): void;
  user: {
    user_data?: { id?: string } | null;
    signinDonePromise?: Promise<unknown> | null;
  };
}

/** A subscribed pusher-js channel. */
export interface ChannelLike {
  name: string;
  subscribed?: boolean;
  bind(event: string, cb: (data: any, metadata?: any) => void): unknown;
  unbind(event: string, cb?: (data: any, metadata?: any) => void): unknown;
  trigger(event: string, data: unknown): boolean;
}
