/**
 * Where a device's state lives between page loads. The state (device keys,
 * identity key, pins, verified contacts, replay state) is written only
 * encrypted: AES-256-GCM under a WebCrypto key generated with
 * `extractable: false` and kept in the same IndexedDB database (IndexedDB
 * stores CryptoKey objects by structured clone, so script can use the key
 * but never read its bytes).
 */
export interface KeyStore {
  /** The saved state, or `null` when there is none. */
  load(): Promise<Uint8Array | null>;
  /** Replaces the saved state. */
  save(state: Uint8Array): Promise<void>;
  /** Deletes everything (keys included). */
  clear(): Promise<void>;
}

const OBJECTS = 'hush';
const WRAP_KEY = 'wrap-key';
const STATE = 'device-state';

/** The record kept under `device-state`: ciphertext only. */
export interface SealedState {
  v: 1;
  iv: Uint8Array;
  ciphertext: Uint8Array;
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDb(name: string): Promise<IDBDatabase> {
  const r = indexedDB.open(name, 1);
  r.onupgradeneeded = () => {
    if (!r.result.objectStoreNames.contains(OBJECTS)) r.result.createObjectStore(OBJECTS);
  };
  return req(r);
}

async function get(db: IDBDatabase, key: string): Promise<any> {
  return req(db.transaction(OBJECTS, 'readonly').objectStore(OBJECTS).get(key));
}

async function put(db: IDBDatabase, key: string, value: unknown): Promise<void> {
  const tx = db.transaction(OBJECTS, 'readwrite');
  tx.objectStore(OBJECTS).put(value, key);
  await new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** The key store in IndexedDB (see the module comment). */
class IndexedDbKeyStore implements KeyStore {
  private readonly aad: Uint8Array<ArrayBuffer>;
  constructor(
    private readonly db: IDBDatabase,
    private readonly key: CryptoKey,
    name: string,
  ) {
    this.aad = new TextEncoder().encode(`hush/e2ee/key-store/v1\0${name}`);
  }

  async load(): Promise<Uint8Array | null> {
    const rec = (await get(this.db, STATE)) as SealedState | undefined;
    if (!rec) return null;
    if (rec.v !== 1) throw new Error('key store: unknown record version');
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: rec.iv as Uint8Array<ArrayBuffer>, additionalData: this.aad },
      this.key,
      rec.ciphertext as Uint8Array<ArrayBuffer>,
    );
    return new Uint8Array(plain);
  }

  async save(state: Uint8Array): Promise<void> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: this.aad },
      this.key,
      state as Uint8Array<ArrayBuffer>,
    );
    const rec: SealedState = { v: 1, iv, ciphertext: new Uint8Array(ct) };
    await put(this.db, STATE, rec);
  }

  async clear(): Promise<void> {
    const tx = this.db.transaction(OBJECTS, 'readwrite');
    tx.objectStore(OBJECTS).clear();
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }
}

/** A key store in memory (tests, or a device that must not outlive the page). */
class MemoryKeyStore implements KeyStore {
  private state: Uint8Array | null = null;
  async load(): Promise<Uint8Array | null> {
    return this.state ? this.state.slice() : null;
  }
  async save(state: Uint8Array): Promise<void> {
    this.state = state.slice();
  }
  async clear(): Promise<void> {
    this.state = null;
  }
}

/** Key store constructors. */
export const KeyStore = {
  /**
   * The IndexedDB key store of database `name` (one per device on this
   * origin): creates the non-extractable AES-GCM wrapping key on first use.
   */
  async indexedDb(name: string): Promise<KeyStore> {
    const db = await openDb(name);
    let key = (await get(db, WRAP_KEY)) as CryptoKey | undefined;
    if (!key) {
      key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, [
        'encrypt',
        'decrypt',
      ]);
      await put(db, WRAP_KEY, key);
    }
    return new IndexedDbKeyStore(db, key, name);
  },
  /** A key store that lives in memory only. */
  memory(): KeyStore {
    return new MemoryKeyStore();
  },
};
