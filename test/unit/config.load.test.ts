import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';

describe('loadConfig', () => {
  it('defaults every key', () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(3000);
    expect(c.DATA_DIR).toBe('.data');
    expect(c.MOTH_PORT).toBe(8276);
    expect(c.channels.sharedDeviceBus).toBe(
      '/pang/ws/meb?channel=instant&name=device-management&source=base&track=base',
    );
    expect(c.channels.deviceBus('Xy_9-abc')).toBe(
      '/pang/ws/meb?channel=instant&name=device-management&source=base&track=Xy_9-abc',
    );
    expect(c.SHARDS).toBe(64);
    expect(c.MOTH_SHARED_BUS).toBe(true);
    expect(c.channels.clientEvents).toBe(
      '/pang/ws/meb?channel=instant&name=client-events&source=base&track=base',
    );
    expect(Object.isFrozen(c)).toBe(true);
  });
  it("a registered channel's id is joined by id; any other name is an instant channel", () => {
    const c = loadConfig({ MOTH_DEVICE_CHANNEL: 'c0ffee00c0ffee00abcd', MOTH_DEVICE_KEY: 'k'.repeat(16) });
    expect(c.channels.deviceBusForRobot('bus1')).toBe(
      `/pang/ws/meb?channel=c0ffee00c0ffee00abcd&source=base&track=bus1&key=${'k'.repeat(16)}`,
    );
    // Not an id (upper case, 19 characters): a name.
    for (const name of ['C0FFEE00C0FFEE00ABCD', 'c0ffee00c0ffee00abc'])
      expect(loadConfig({ MOTH_CLIENT_CHANNEL: name }).channels.clientEvents).toBe(
        `/pang/ws/meb?channel=instant&name=${name}&source=base&track=base`,
      );
  });
  it('on a Redis Cluster, QUEUE_PREFIX must be a hash tag', () => {
    expect(() => loadConfig({ REDIS_CLUSTER: 'true' })).toThrow(/QUEUE_PREFIX: must be a hash tag/);
    expect(loadConfig({ REDIS_CLUSTER: 'true', QUEUE_PREFIX: '{rollcall}' }).REDIS_CLUSTER).toBe(true);
  });
  it('names every bad variable', () => {
    expect(() => loadConfig({ PORT: 'x', REDIS_URL: 'nope' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'x', REDIS_URL: 'nope', TLS_CERT_FILE: 'only-one.pem' });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toMatch(/PORT/);
      expect((e as Error).message).toMatch(/REDIS_URL/);
    }
    expect(() => loadConfig({ TLS_CERT_FILE: 'only-one.pem' })).toThrow(/TLS_CERT_FILE and TLS_KEY_FILE/);
    // Short credentials could be guessed: the process refuses to start with them.
    expect(() => loadConfig({ ADMIN_TOKEN: 'x'.repeat(31) })).toThrow(/ADMIN_TOKEN: at least 32 characters/);
    expect(() => loadConfig({ TRUST_PROXY_ADDRESSES: 'proxy.local' })).toThrow(/TRUST_PROXY_ADDRESSES/);
    expect(loadConfig({ TRUST_PROXY_ADDRESSES: '10.0.0.0/8, ::1' }).TRUST_PROXY_ADDRESSES).toBe(
      '10.0.0.0/8, ::1',
    );
    expect(loadConfig({ ADMIN_TOKEN: 'x'.repeat(32) }).ADMIN_TOKEN).toBe('x'.repeat(32));
    expect(() => loadConfig({ DEVICE_SECRET_KEY: 'x'.repeat(15) })).toThrow(
      /DEVICE_SECRET_KEY: at least 16 characters/,
    );
    expect(loadConfig({ DEVICE_SECRET_KEY: 'x'.repeat(16) }).DEVICE_SECRET_KEY).toBe('x'.repeat(16));
  });
  it('treats empty strings as unset', () => {
    expect(
      loadConfig({ DATABASE_URL: '', ADMIN_TOKEN: '', DEVICE_SECRET_KEY: '' }).DATABASE_URL,
    ).toBeUndefined();
  });
});
