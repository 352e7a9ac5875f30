import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { createDestinationPolicy, refusalOfUrl } from '../../src/domain/destinations';

// Where a webhook may reach: every way of writing an address of this host, its networks or the
// cloud's metadata service is refused; public addresses and names pass (a name is checked when it
// resolves); the allow list opens hosts, addresses and ranges for receivers on the premises.

describe('webhook destinations', () => {
  const none = createDestinationPolicy('');

  it.each([
    ['http://127.0.0.1:8080/recordings/x/stop', 'loopback'],
    ['http://0x7f000001/', 'loopback'],
    ['http://2130706433/', 'loopback'],
    ['http://127.1/', 'loopback'],
    ['http://[::1]/', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', 'IPv4-mapped'],
    ['http://169.254.169.254/latest/meta-data', 'metadata'],
    ['http://10.0.0.5/', 'private'],
    ['http://172.20.1.1/', 'private'],
    ['http://192.168.1.10/', 'private'],
    ['http://100.64.0.1/', 'carrier-grade NAT'],
    ['http://0.0.0.0/', 'this network'],
    ['http://[fd00::1]/', 'unique local'],
    ['http://[fe80::1]/', 'link-local'],
    ['http://[64:ff9b::7f00:1]/', 'NAT64'],
    ['http://239.1.1.1/', 'multicast'],
  ])('refuses %s (%s)', (url, why) => {
    expect(refusalOfUrl(none, url)).toMatch(new RegExp(`^refused: .*${why}`));
  });

  it('lets public addresses and names through (names are checked when resolved)', () => {
    for (const url of ['http://93.184.216.34/hook', 'https://[2606:4700::1]/', 'https://hooks.example.com/x'])
      expect(refusalOfUrl(none, url)).toBeUndefined();
    expect(none.refusal('8.8.8.8')).toBeUndefined();
    expect(none.refusal('10.1.1.1')).toMatch(/private/);
  });

  it('opens hosts, addresses and ranges of the allow list, and only those', () => {
    const some = createDestinationPolicy(' 127.0.0.1 , 10.0.0.0/8,Hooks.Plant.Local,fd00::/8 ');
    expect(refusalOfUrl(some, 'http://127.0.0.1:9/')).toBeUndefined();
    expect(refusalOfUrl(some, 'http://127.0.0.2:9/')).toMatch(/loopback/);
    expect(some.refusal('10.200.3.4')).toBeUndefined();
    expect(some.refusal('192.168.0.1')).toMatch(/private/);
    expect(some.refusal('fd12::1')).toBeUndefined();
    expect(some.allowsHost('hooks.plant.local')).toBe(true);
    expect(some.allowsHost('other.plant.local')).toBe(false);
  });

  it('refuses a malformed allow list at start', () => {
    expect(() => loadConfig({ WEBHOOK_ALLOW_HOSTS: '10.0.0.0/40' })).toThrow(/WEBHOOK_ALLOW_HOSTS/);
    expect(() => loadConfig({ WEBHOOK_ALLOW_HOSTS: 'hooks.local/8' })).toThrow(/WEBHOOK_ALLOW_HOSTS/);
    expect(loadConfig({ WEBHOOK_ALLOW_HOSTS: '127.0.0.1,::1' }).WEBHOOK_ALLOW_HOSTS).toBe('127.0.0.1,::1');
  });
});
