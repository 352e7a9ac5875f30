import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { newChannelId } from '../../src/domain/channel-ids';
import { stays, withKey } from '../support/moth-session';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// rollcall's channels are registered ones (Moth creates them through its management API, with their
// key): a squatter who joins before the gateway, or a client-key holder who empties the channel and
// comes back with a key of its own, neither sets a key nor keeps the gateway out. On instant
// channels both would take the channel: the first joiner sets the key there.

const DEVICE_CHANNEL = newChannelId();
const CLIENT_CHANNEL = newChannelId();
const DEVICE_KEY = 'device-channel-key-0123456789';
const CLIENT_KEY = 'client-channel-key-0123456789';

describe("rollcall's channels are registered Moth channels", () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 1,
      mothProxy: true,
      hub: { channels: { [DEVICE_CHANNEL]: DEVICE_KEY, [CLIENT_CHANNEL]: CLIENT_KEY } },
      env: {
        MOTH_DEVICE_CHANNEL: DEVICE_CHANNEL,
        MOTH_CLIENT_CHANNEL: CLIENT_CHANNEL,
        MOTH_DEVICE_KEY: DEVICE_KEY,
        MOTH_CLIENT_KEY: CLIENT_KEY,
      },
    });
  });
  afterAll(async () => s.close());

  it('a squatter racing the gateway after a Moth restart takes neither channel', async () => {
    const d = await s.device();
    expect(new URL(d.reg.channels.deviceManagement, 'ws://x').searchParams.get('channel')).toBe(
      DEVICE_CHANNEL,
    );
    await s.waitStatus(d.id, 'CONNECTED');

    // The gateway comes back 3 s after Moth does; the squatters are there first, with a key of their own.
    s.mothProxy!.hold(() => true, 3000);
    await s.stopHub();
    const squatters: Promise<boolean>[] = [];
    await s.startHub(async () => {
      const paths = [
        s.config.channels.clientEvents,
        s.config.channels.sharedDeviceBus,
        d.reg.channels.deviceManagement,
      ];
      squatters.push(...paths.map((p) => stays(`${s.config.MOTH_URL}${withKey(p, 'squatters-own-key')}`)));
      await Promise.all(squatters);
    });
    expect(await Promise.all(squatters)).toEqual([false, false, false]);

    await waitFor(
      () => s.gateways[0]!.clientChannel.isOpen,
      10_000,
      'the gateway back on the client channel',
    );
    const late = await s.device();
    await s.waitStatus(late.id, 'CONNECTED');
    await waitFor(() => s.eventsOf(late.id, 'DEVICE_CONNECTED').length > 0, 5000, 'events reach the client');
  });

  it('a client-key holder who empties the client channel and comes back with a key of its own is refused', async () => {
    // The channel empties: the gateway's session drops (as a 16 MiB frame once made it) and the
    // other clients leave.
    s.stopListening();
    s.mothProxy!.hold((path) => path.includes(CLIENT_CHANNEL), 2000);
    const holder = new WebSocket(`${s.config.MOTH_URL}${s.config.channels.clientEvents}&key=${CLIENT_KEY}`);
    await new Promise((resolve, reject) => holder.once('open', resolve).once('error', reject));
    holder.send(Buffer.alloc(16 * 1024 * 1024 - 1024), { binary: true });
    holder.close();
    await new Promise((resolve) => holder.once('close', resolve));
    expect(await stays(`${s.config.MOTH_URL}${s.config.channels.clientEvents}&key=holders-own-key`)).toBe(
      false,
    );

    await waitFor(
      () => s.gateways[0]!.clientChannel.isOpen,
      10_000,
      'the gateway back on the client channel',
    );
    await s.listenAgain();
    const d = await s.device();
    await waitFor(() => s.eventsOf(d.id, 'DEVICE_CONNECTED').length > 0, 10_000, 'events reach the client');
  });
});
