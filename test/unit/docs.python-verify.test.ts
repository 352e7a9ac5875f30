import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { signEvent } from '../../src/domain/signatures';
import { testSigningKey } from '../support/signing-key';

// The Python check in docs/moth.md of a signed event, run as written against events signed as the service
// signs them (when python3 has the `cryptography` package; CI's machine does).

const python = spawnSync('python3', ['-c', 'import cryptography']).status === 0;
if (!python) console.warn('Python check of docs/moth.md skipped: python3 with cryptography is missing');

const readmePython = () => {
  const block = /```python\n([\s\S]*?)```/.exec(readFileSync('docs/moth.md', 'utf8'));
  // The doc indents it as part of a list item.
  return block![1]!.replace(/^ {2}/gm, '');
};

describe.skipIf(!python)('the Python verification in docs/moth.md', () => {
  it('accepts what the service signs and refuses an altered event', () => {
    const { key, jwk } = testSigningKey();
    const event = signEvent(
      {
        type: 'TASK_REGISTERED',
        eventId: '7d1f4a4e-9f5e-4a43-8f5e-2b8c4a5c7b10',
        occurredAt: '2026-12-04T03:00:00.000Z',
        deviceId: 'a1b2c3d4-0000-4000-8000-000000000001',
        device_name: 'amr-ünïcode ☃',
        payload: { speed: 3, path: ['a', 'b'], nested: { z: 1, a: null } },
        stream: 'device:a1b2c3d4-0000-4000-8000-000000000001',
        seq: 12,
      },
      key,
    );
    const script = `${readmePython()}
import sys
cases = json.load(sys.stdin)
print(json.dumps([verified(e, cases['jwks']) for e in cases['events']]))
`;
    const altered = { ...event, seq: 13 };
    const res = spawnSync('python3', ['-c', script], {
      input: JSON.stringify({ jwks: [jwk], events: [event, altered, { ...event, kid: 'other' }] }),
      encoding: 'utf8',
    });
    expect(res.stderr).toBe('');
    expect(JSON.parse(res.stdout)).toEqual([true, false, false]);
  });
});
