import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tokenHash } from '../../src/domain/credentials';
import { expectedProof, heartbeatProof, proofMatches } from '../../src/domain/proofs';
import { decodeInbound, healthcheck } from '../../src/moth/codec';

const b = (s: string) => Buffer.from(s);

const ID = '0b8f3c3e-5a1d-4c2b-9d7e-2f6a1b3c4d5e';
const PROOF = heartbeatProof('tok', 7, 'nonce');

describe('protocol v2 proofs', () => {
  it('decodes a proof with every field, and nothing beside a token', () => {
    const frame = { type: 'HEARTBEAT', deviceId: ID, round: 7, proof: PROOF };
    expect(decodeInbound(b(JSON.stringify(frame)))).toEqual({
      kind: 'proof',
      deviceId: ID,
      round: 7,
      proof: PROOF,
    });
    for (const [bad, reason] of [
      [{ ...frame, token: 'tok' }, 'token beside a proof'],
      [{ ...frame, deviceId: 'd-1' }, 'bad deviceId'],
      [{ ...frame, deviceId: ID.toUpperCase() }, 'bad deviceId'],
      [{ ...frame, round: undefined }, 'bad round'],
      [{ ...frame, round: -1 }, 'bad round'],
      [{ ...frame, proof: PROOF.slice(1) }, 'bad proof'],
      [{ ...frame, proof: `${PROOF.slice(1)}=` }, 'bad proof'],
      [{ ...frame, proof: 42 }, 'bad proof'],
    ] as const)
      expect(decodeInbound(b(JSON.stringify(bad))), reason).toEqual({ kind: 'malformed', reason });
  });

  it('a proof is checked under the token hash the server stores, for its round and nonce only', () => {
    const key = tokenHash('tok');
    expect(proofMatches(PROOF, expectedProof(key, 7, 'nonce'))).toBe(true);
    expect(proofMatches(PROOF, expectedProof(key, 8, 'nonce'))).toBe(false);
    expect(proofMatches(PROOF, expectedProof(key, 7, 'other'))).toBe(false);
    expect(proofMatches(PROOF, expectedProof(tokenHash('other'), 7, 'nonce'))).toBe(false);
    expect(proofMatches('short', expectedProof(key, 7, 'nonce'))).toBe(false);
    // "7" + "1.x" and "71" + ".x" are different messages.
    expect(heartbeatProof('tok', 71, 'x')).not.toBe(heartbeatProof('tok', 7, '1.x'));
  });
});

describe('GOODBYE', () => {
  it('decodes the token form and the v2 proof form; anything else is malformed', () => {
    expect(decodeInbound(b('{"type":"GOODBYE","token":"abc"}'))).toEqual({ kind: 'goodbye', token: 'abc' });
    const proof = { deviceId: ID, round: 3, proof: heartbeatProof('tok', 3, 'n', 'goodbye') };
    expect(decodeInbound(b(JSON.stringify({ type: 'GOODBYE', ...proof })))).toEqual({
      kind: 'goodbye',
      proof,
    });
    expect(decodeInbound(b('{"type":"GOODBYE"}'))).toEqual({ kind: 'malformed', reason: 'bad token' });
    expect(decodeInbound(b(JSON.stringify({ type: 'GOODBYE', ...proof, token: 'tok' })))).toEqual({
      kind: 'malformed',
      reason: 'token beside a proof',
    });
  });

  it('a goodbye proof is not a heartbeat proof of the same round, nor the reverse', () => {
    const key = tokenHash('tok');
    expect(
      proofMatches(heartbeatProof('tok', 3, 'n', 'goodbye'), expectedProof(key, 3, 'n', 'goodbye')),
    ).toBe(true);
    expect(proofMatches(heartbeatProof('tok', 3, 'n'), expectedProof(key, 3, 'n', 'goodbye'))).toBe(false);
    expect(proofMatches(heartbeatProof('tok', 3, 'n', 'goodbye'), expectedProof(key, 3, 'n'))).toBe(false);
  });
});

describe('decodeInbound', () => {
  it('accepts the heartbeat deployed robots send, with only type and token', () => {
    expect(decodeInbound(b('{"type":"HEARTBEAT","token":"abc"}'))).toEqual({
      kind: 'heartbeat',
      token: 'abc',
    });
  });
  it("counts the CONNECT TeamGRIT's ICRA-2025 client sends first as a heartbeat", () => {
    expect(decodeInbound(b('{"type":"CONNECT","token":"abc"}'))).toEqual({ kind: 'heartbeat', token: 'abc' });
    expect(decodeInbound(b('{"type":"CONNECT"}'))).toEqual({ kind: 'malformed', reason: 'bad token' });
  });
  it('honours an integer round echo', () => {
    expect(decodeInbound(b('{"type":"HEARTBEAT","token":"abc","round":12}'))).toEqual({
      kind: 'heartbeat',
      token: 'abc',
      round: 12,
    });
  });
  it.each([
    ['not json', 'not JSON'],
    ['[1]', 'not an object'],
    ['null', 'not an object'],
    ['{"token":"a"}', 'no type'],
    ['{"type":"HEARTBEAT"}', 'bad token'],
    ['{"type":"HEARTBEAT","token":5}', 'bad token'],
    ['{"type":"HEARTBEAT","token":"a","round":1.5}', 'bad round'],
    ['{"type":"HEARTBEAT","token":"a","round":"1"}', 'bad round'],
  ])('%s is malformed (%s)', (frame, reason) => {
    expect(decodeInbound(b(frame))).toEqual({ kind: 'malformed', reason });
  });
  it('ignores other message types (HEALTHCHECK from another gateway, TASK_REGISTERED)', () => {
    expect(decodeInbound(b('{"type":"HEALTHCHECK","round":1}'))).toEqual({
      kind: 'ignored',
      type: 'HEALTHCHECK',
    });
  });
  it('refuses frames over the size limit without parsing', () => {
    expect(decodeInbound(Buffer.alloc(5000, 32))).toEqual({ kind: 'malformed', reason: 'too large' });
  });
  it.each([
    ['a token with characters outside base64url', '{"type":"HEARTBEAT","token":"a+b/c="}', 'a+b/c='],
    ['spaces', '{ "type": "HEARTBEAT", "token": "abc" }', 'abc'],
    ['keys in another order', '{"token":"abc","type":"HEARTBEAT"}', 'abc'],
    ['an escaped character', '{"type":"HEARTBEAT","token":"a\\u0062c"}', 'abc'],
    ['a trailing newline', '{"type":"HEARTBEAT","token":"abc"}\n', 'abc'],
  ])('reads a heartbeat written with %s like any other', (_what, frame, token) => {
    expect(decodeInbound(b(frame))).toEqual({ kind: 'heartbeat', token });
  });
  it.each([
    ['an empty token', '{"type":"HEARTBEAT","token":""}', 'bad token'],
    ['a token over the limit', `{"type":"HEARTBEAT","token":"${'a'.repeat(513)}"}`, 'bad token'],
    ['a cut frame', '{"type":"HEARTBEAT","token":"abc"', 'not JSON'],
    ['an unclosed token', '{"type":"HEARTBEAT","token":"abc}', 'not JSON'],
  ])('refuses %s, written in the canonical shape or not', (_what, frame, reason) => {
    expect(decodeInbound(b(frame))).toEqual({ kind: 'malformed', reason });
  });
  it('decodes any token exactly as JSON does, on the canonical path or the general one', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'grapheme', maxLength: 600 }),
          fc.base64String({ maxLength: 600 }),
          fc.stringMatching(/^[A-Za-z0-9_-]{0,600}$/), // the canonical path
        ),
        (token) => {
          const frame = b(JSON.stringify({ type: 'HEARTBEAT', token }));
          const expected =
            frame.length > 4096
              ? { kind: 'malformed', reason: 'too large' }
              : token.length === 0 || token.length > 512
                ? { kind: 'malformed', reason: 'bad token' }
                : { kind: 'heartbeat', token };
          expect(decodeInbound(frame)).toEqual(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
  it('never throws, and classifies any JSON or bytes as what they parse to', () => {
    const parsedType = (frame: Buffer): unknown => {
      try {
        return (JSON.parse(frame.toString('utf8')) as { type?: unknown } | null)?.type;
      } catch {
        return undefined;
      }
    };
    const frames = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
      fc.jsonValue({ maxDepth: 4 }).map((v) => b(JSON.stringify(v))),
      fc
        .record(
          {
            type: fc.oneof(fc.constant('HEARTBEAT'), fc.jsonValue({ maxDepth: 2 })),
            token: fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 })),
            round: fc.oneof(fc.nat(), fc.jsonValue({ maxDepth: 2 })),
          },
          { requiredKeys: [] },
        )
        .map((v) => b(JSON.stringify(v))),
    );
    fc.assert(
      fc.property(frames, (frame) => {
        const decoded = decodeInbound(frame);
        const type = parsedType(frame);
        if (decoded.kind === 'heartbeat') {
          expect(type).toBe('HEARTBEAT');
          const msg = JSON.parse(frame.toString('utf8')) as { token: unknown; round?: unknown };
          expect(decoded.token).toBe(msg.token);
          expect(decoded.round).toBe(msg.round ?? undefined);
        } else if (decoded.kind === 'ignored') {
          expect(typeof type === 'string' && type !== 'HEARTBEAT').toBe(true);
        } else {
          expect(decoded.kind).toBe('malformed');
        }
      }),
      { numRuns: 3000 },
    );
  });
  it('builds the HEALTHCHECK of the contract', () => {
    expect(healthcheck(3, 5, new Date('2026-01-01T00:00:00Z'))).toEqual({
      type: 'HEALTHCHECK',
      round: 3,
      intervalSeconds: 5,
      issuedAt: '2026-01-01T00:00:00.000Z',
    });
  });
});
