import { describe, expect, it } from 'vitest';
import { openApiDocument, operationIdOf } from '../../src/http/openapi';

type Operation = { operationId: string; responses: Record<string, unknown> };

const operations = () =>
  Object.entries(openApiDocument('1').paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ path, method, ...(op as Operation) })),
  );

/** What takes no input and no credentials, and so answers no 4xx. */
const NO_INPUT = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/.well-known/rollcall-keys'];

describe('the OpenAPI document, for generators', () => {
  it('names every operation, once, as a method name', () => {
    const ids = operations().map((o) => o.operationId);
    expect(ids.length).toBeGreaterThan(50);
    for (const id of ids) expect(id).toMatch(/^[a-z]+[A-Z][A-Za-z0-9]*$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect(operationIdOf({ method: 'get', path: '/devices/{id}/sessions' })).toBe('getDevicesByIdSessions');
    expect(operationIdOf({ method: 'get', path: '/.well-known/rollcall-keys' })).toBe(
      'getWellKnownRollcallKeys',
    );
  });

  it('says where it is served, and every operation that takes input or credentials lists its 4xx', () => {
    expect(openApiDocument('1').servers).toEqual([expect.objectContaining({ url: '/' })]);
    for (const o of operations()) {
      const has4xx = Object.keys(o.responses).some((status) => /^4\d\d$/.test(status));
      expect(has4xx, `${o.method} ${o.path}`).toBe(!NO_INPUT.includes(o.path));
    }
  });
});
