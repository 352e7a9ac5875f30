import { randomBytes } from 'node:crypto';

const XID = /^[0-9a-v]{20}$/;
const XID_DIGITS = '0123456789abcdefghijklmnopqrstuv';

/**
 * Whether a channel name is the id of a registered channel (Moth names a channel created through its
 * management API by a 20-character xid, joined as `channel=<id>`), rather than an instant channel's
 * name (`channel=instant&name=<name>`, created by its first joiner).
 */
export function isRegisteredChannelId(name: string): boolean {
  return XID.test(name);
}

/** A fresh id in Moth's form, for the embedded hub's registered channels: random, so nobody guesses it. */
export function newChannelId(): string {
  return [...randomBytes(20)].map((b) => XID_DIGITS[b & 31]).join('');
}
