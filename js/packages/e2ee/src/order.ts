/**
 * Ordering of mailbox items before they are opened. A suite 1 envelope's header is cleartext
 * (docs/E2EE-SUITE1.md §4.1: sender user, sender device, channel, …, sequence); reading the
 * stream and sequence lets a fetch cycle hand the core each stream's messages in sequence
 * order even when the server returned them shuffled. This decides nothing about security: the
 * core still verifies every envelope (signature over the header included) and its replay guard
 * still refuses duplicates; a header that does not parse keeps its place.
 */

/** The (sender user, sender device, channel) stream and sequence number of an envelope. */
export interface StreamPosition {
  stream: string;
  sequence: bigint;
}

function b64(s: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** Reads the stream and sequence from a suite 1 envelope (base64), or null. */
export function streamPosition(envelope: unknown): StreamPosition | null {
  if (typeof envelope !== 'string' || !envelope.startsWith('aHVzaA')) return null;
  const b = b64(envelope.slice(0, 1400)); // the header is well inside (ids ≤ 128 B, names ≤ 200 B)
  if (!b || b.length < 6 || b[4] !== 4 || b[5] !== 1) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 6;
  const str16 = (): Uint8Array | null => {
    if (o + 2 > b.length) return null;
    const n = v.getUint16(o);
    if (o + 2 + n > b.length) return null;
    const s = b.subarray(o + 2, o + 2 + n);
    o += 2 + n;
    return s;
  };
  const user = str16();
  if (!user || o + 16 > b.length) return null;
  const device = b.subarray(o, o + 16);
  o += 16;
  const channel = str16();
  const outer = str16();
  if (!channel || !outer || o + 16 + 8 + 8 > b.length) return null;
  o += 16 + 8; // message id, timestamp
  const sequence = v.getBigUint64(o);
  const hex = (x: Uint8Array) => Array.from(x, (c) => c.toString(16).padStart(2, '0')).join('');
  return { stream: `${hex(user)}/${hex(device)}/${hex(channel)}`, sequence };
}

/**
 * Reorders `items` (each with an `envelope`) so that every stream's items come in sequence
 * order, in the places that stream's items occupied; other items keep their places.
 */
export function orderByStream<T extends { envelope?: unknown }>(items: T[]): T[] {
  const pos = items.map((it) => streamPosition(it.envelope));
  const groups = new Map<string, number[]>();
  pos.forEach((p, i) => {
    if (!p) return;
    const g = groups.get(p.stream);
    if (g) g.push(i);
    else groups.set(p.stream, [i]);
  });
  const out = items.slice();
  for (const idx of groups.values()) {
    const sorted = idx.slice().sort((a, b) => {
      const d = pos[a]!.sequence - pos[b]!.sequence;
      return d < 0n ? -1 : d > 0n ? 1 : a - b;
    });
    idx.forEach((slot, k) => {
      out[slot] = items[sorted[k]];
    });
  }
  return out;
}
