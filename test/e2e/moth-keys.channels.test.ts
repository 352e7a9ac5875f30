import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRegisteredChannelId } from '../../src/domain/channel-ids';
import { embeddedMothChannels, mothChannelKeys } from '../../src/dev/moth-keys';
import { stays, withKey } from '../support/moth-session';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// One Moth key per channel: robots get the device channel's in the bus path they are given; clients
// of the events hold the client channel's. Neither opens the other channel.

const DEVICE_KEY = 'device-channel-key-0123456789';
const CLIENT_KEY = 'client-channel-key-0123456789';

describe('a Moth key per channel', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 1,
      env: { MOTH_DEVICE_KEY: DEVICE_KEY, MOTH_CLIENT_KEY: CLIENT_KEY },
    });
  });
  afterAll(async () => s.close());

  it('robots join with the path they are given, clients with theirs; neither key opens the other channel', async () => {
    const d = await s.device();
    const path = d.reg.channels.deviceManagement;
    expect(new URL(path, 'ws://x').searchParams.get('key')).toBe(DEVICE_KEY);
    // As the robot reads it again later.
    const again = await request(s.callback)
      .get(`/devices/${d.id}`)
      .set({ Authorization: `Bearer ${d.reg.token}` });
    expect((again.body as { channels: { deviceManagement: string } }).channels.deviceManagement).toBe(path);
    await s.waitStatus(d.id, 'CONNECTED');
    await waitFor(() => s.events.some((e) => e.deviceId === d.id), 5000, 'events reach the keyed client');

    const moth = s.config.MOTH_URL;
    const client = s.config.channels.clientEvents;
    expect(await stays(`${moth}${path}`)).toBe(true);
    expect(await stays(`${moth}${withKey(client, CLIENT_KEY)}`)).toBe(true);
    for (const refused of [
      withKey(path, undefined),
      withKey(path, CLIENT_KEY),
      withKey(client, undefined),
      withKey(client, DEVICE_KEY),
    ])
      expect(await stays(`${moth}${refused}`), refused).toBe(false);
  });

  it('npm start generates both keys once and keeps them across restarts; MOTH_KEY alone keeps its meaning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keys-'));
    const first = mothChannelKeys({}, dir);
    expect(first.MOTH_DEVICE_KEY).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(first.MOTH_CLIENT_KEY).not.toBe(first.MOTH_DEVICE_KEY);
    expect(mothChannelKeys({}, dir)).toEqual(first);
    expect(mothChannelKeys({ MOTH_CLIENT_KEY: 'given-client-key-0123' }, dir)).toEqual({
      MOTH_DEVICE_KEY: first.MOTH_DEVICE_KEY,
      MOTH_CLIENT_KEY: 'given-client-key-0123',
    });
    expect(mothChannelKeys({ MOTH_KEY: 'one-key-for-both-0123' }, dir)).toEqual({});
  });

  it("npm start registers both channels on the embedded hub once and keeps their ids; a Moth of one's own is left as configured", () => {
    const dir = mkdtempSync(join(tmpdir(), 'channels-'));
    const first = embeddedMothChannels({}, dir);
    expect(isRegisteredChannelId(first.MOTH_DEVICE_CHANNEL!)).toBe(true);
    expect(isRegisteredChannelId(first.MOTH_CLIENT_CHANNEL!)).toBe(true);
    expect(first.MOTH_CLIENT_CHANNEL).not.toBe(first.MOTH_DEVICE_CHANNEL);
    expect(embeddedMothChannels({}, dir)).toEqual(first);
    expect(embeddedMothChannels({ MOTH_CLIENT_CHANNEL: 'events' }, dir)).toEqual({
      MOTH_DEVICE_CHANNEL: first.MOTH_DEVICE_CHANNEL,
      MOTH_CLIENT_CHANNEL: 'events',
    });
    expect(embeddedMothChannels({ MOTH_URL: 'ws://moth:8276' }, dir)).toEqual({});
  });
});
