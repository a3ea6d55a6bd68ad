import initWasm, { ChannelCrypto, Device, MailboxReceiver } from '../wasm/hush_wasm.js';

export { ChannelCrypto, Device, MailboxReceiver };

let ready: Promise<void> | null = null;

/** Options of {@link init}. */
export interface InitOptions {
  /** Where `hush_wasm_bg.wasm` is (default: next to `hush_wasm.js`), or its bytes / a compiled module. */
  wasm?: string | URL | Response | BufferSource | WebAssembly.Module;
}

/**
 * Loads and instantiates the WebAssembly core (once; later calls return the
 * same promise). Every other call of this package needs it first.
 */
export function init(opts: InitOptions = {}): Promise<void> {
  if (!ready) {
    const arg = opts.wasm === undefined ? undefined : { module_or_path: opts.wasm as any };
    ready = initWasm(arg).then(() => undefined);
    ready.catch(() => {
      ready = null;
    });
  }
  return ready;
}
