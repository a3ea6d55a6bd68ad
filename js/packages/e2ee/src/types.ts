/** A message that opened: verified sender, decrypted, not a replay. */
export interface Message {
  /** The channel it was sealed for (a mailbox conversation channel for mailbox messages). */
  channel: string;
  /** The inner (encrypted) event name. */
  event: string;
  /** The plaintext, parsed as JSON (else the string). */
  data: any;
  /** The sender's user id (directory-verified). */
  senderUser: string;
  /** The sender's device id (hex). */
  senderDevice: string;
  /** The message id (hex). */
  messageId: string;
  /** The sender's signed time (Unix ms). */
  timestampMs: number;
  /** The sender device's sequence number on this channel. */
  sequence: number;
  /** How many earlier messages of this sender device and channel never arrived. */
  missed: number;
  /** Whether the sender is a contact this device marked verified (and still is). */
  verifiedSender: boolean;
  /** The gossiped tree head check: `consistent`, `unchecked` or `fork`. */
  gossip: string;
  /** Mailbox messages: the server's queue id. */
  mailboxId?: number;
  /** Mailbox messages: when the server queued it (Unix ms). */
  queuedMs?: number;
  /** Mailbox messages: arrived after a later one of the same stream. */
  late?: boolean;
}

/** A contact's keys changed (`key-changed` event). */
export interface KeyChanged {
  type: 'key-changed';
  user: string;
  /** The identity key itself changed (a new safety number). */
  identityChanged: boolean;
  added: string[];
  removed: string[];
  /** The contact was verified: sending to them is refused until `markVerified` again. */
  wasVerified: boolean;
}

/** Another epoch root seen for an epoch this device trusts (`fork` event). */
export interface ForkDetected {
  type: 'fork';
  ours: string;
  theirs: string;
  sender?: string;
  channel?: string;
}

/** This user's own entry changed without this device knowing (`owner-alarm` event). */
export interface OwnerAlarm {
  type: 'owner-alarm';
  kind: 'unknown-device' | 'unknown-revocation' | 'identity-changed';
  device?: string;
  card?: string;
  expected?: string | null;
  found?: string;
}

/** A safety number: 60 digits, grouped for display, and the QR payload. */
export interface SafetyNumber {
  digits: string;
  grouped: string;
  /** The QR code payload (base64). */
  qr: string;
}

/** What `sendToUsers` got from the server (`mailbox.send`). */
export interface Queued {
  /** The message id (hex), for `mailboxStatus`. */
  messageId: string;
  /** Recipient devices it was queued for. */
  devices: number;
  /** Of those, connected now (pushed at once). */
  online: number;
  /** When the server deletes it unread (Unix ms). */
  expiresMs: number;
}

/** `mailbox.status`: where a sent message stands. */
export interface MailboxStatus {
  /** Devices it was queued for. */
  recipients: number;
  /** How many acknowledged it. */
  acknowledged: number;
  /** Devices still holding it: `queued` (never sent to it) or `delivered` (not acknowledged yet). */
  pending: Array<{ user: string; device: string; state: string }>;
  /** Every device acknowledged it (the server forgot it). */
  done: boolean;
}
