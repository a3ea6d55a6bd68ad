/**
 * Errors of @hush/e2ee. Every refusal of the WebAssembly core arrives as a
 * `HushError` whose `code` is the core's stable code (`bad-signature`,
 * `replay`, `unverified-change`, `stale-head`, …; crates/hush-wasm/README.md);
 * a refused `hush:request` has the server's code (`not_signed_in`,
 * `rate_limited`, …) with `source: 'server'`.
 */
export class HushError extends Error {
  /** The stable error code. */
  readonly code: string;
  /** Where it was decided: the wasm core, the server, or this layer. */
  readonly source: 'core' | 'server' | 'client';

  constructor(code: string, message: string, source: 'core' | 'server' | 'client') {
    super(`${code}: ${message}`);
    this.name = 'HushError';
    this.code = code;
    this.source = source;
  }
}

/** Turns anything the wasm core threw into a `HushError` (code = text before the first ": "). */
export function coreError(e: unknown): HushError {
  if (e instanceof HushError) return e;
  const text = e instanceof Error ? e.message : String(e);
  const m = /^([a-z0-9-]+): ([\s\S]*)$/.exec(text);
  return m ? new HushError(m[1], m[2], 'core') : new HushError('core', text, 'core');
}
