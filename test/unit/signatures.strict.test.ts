import { describe, expect, it } from 'vitest';
import { signEvent, verifyEvent, verifySignedFrame, type PublicJwk } from '../../src/domain/signatures';
import { testSigningKey } from '../support/signing-key';

const { key, jwk } = testSigningKey();
const keys: PublicJwk[] = [jwk];
const command = signEvent(
  {
    type: 'TASK_REGISTERED',
    eventId: 'e1',
    deviceId: 'd1',
    action: 'PATROL',
    payload: { lap: 1, note: 'a"b' },
  },
  key,
);
const frame = JSON.stringify(command);

describe('a signed frame, verified over the bytes as sent', () => {
  it('as sent: verifies, and gives the event', () => {
    expect(verifySignedFrame(frame, keys)).toEqual(command);
    expect(verifySignedFrame(Buffer.from(frame), keys)).toEqual(command);
  });

  it('a second key of the same name, at any level, is refused (a parser taking the first would act on it)', () => {
    const forged = frame.replace('{', '{"action":"SELF_DESTRUCT",');
    // Parsed, the last one wins: the signature alone would pass it.
    expect(verifyEvent(JSON.parse(forged) as Record<string, unknown>, keys)).toBe(true);
    expect(verifySignedFrame(forged, keys)).toBeNull();
    const nested = frame.replace('"payload":{', '"payload":{"lap":99,');
    expect(verifyEvent(JSON.parse(nested) as Record<string, unknown>, keys)).toBe(true);
    expect(verifySignedFrame(nested, keys)).toBeNull();
    // The same name in two objects, or as a value, is no duplicate.
    const other = signEvent({ type: 'X', eventId: 'e2', a: { type: 'type' }, b: ['type', { type: 1 }] }, key);
    expect(verifySignedFrame(JSON.stringify(other), keys)).toEqual(other);
  });

  it('a signature that is not strict base64url, bytes that are not UTF-8 or not one object, are refused', () => {
    const sig = command.sig;
    for (const bad of [`${sig}=`, `${sig.slice(0, -1)}+`, ` ${sig}`, sig.slice(1)])
      expect(verifySignedFrame(frame.replace(sig, bad), keys)).toBeNull();
    expect(verifySignedFrame(Buffer.concat([Buffer.from(frame), Buffer.from([0xff])]), keys)).toBeNull();
    for (const bad of ['[]', 'null', '"x"', '{', `${frame}x`])
      expect(verifySignedFrame(bad, keys)).toBeNull();
    expect(verifySignedFrame(frame.replace('PATROL', 'PATROM'), keys)).toBeNull();
  });
});
