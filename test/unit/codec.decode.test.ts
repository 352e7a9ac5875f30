import { describe, expect, it } from 'vitest';
import { decodeInbound, healthcheck } from '../../src/moth/codec';

const b = (s: string) => Buffer.from(s);

describe('decodeInbound', () => {
  it('accepts the heartbeat deployed robots send, with only type and token', () => {
    expect(decodeInbound(b('{"type":"HEARTBEAT","token":"abc"}'))).toEqual({
      kind: 'heartbeat',
      token: 'abc',
    });
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
  it('builds the HEALTHCHECK of the contract', () => {
    expect(healthcheck(3, 5, new Date('2026-01-01T00:00:00Z'))).toEqual({
      type: 'HEALTHCHECK',
      round: 3,
      intervalSeconds: 5,
      issuedAt: '2026-01-01T00:00:00.000Z',
    });
  });
});
