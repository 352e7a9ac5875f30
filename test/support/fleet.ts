import request from 'supertest';
import { SimulatedDevice, type SimulatedDeviceOptions } from '../../src/dev/simulated-device';
import { registration } from './app';

type Callback = Parameters<typeof request>[0];

export interface Registered {
  id: string;
  name: string;
  token: string;
  channels: { deviceManagement: string };
}

/** Robots registered over HTTP and connected to their bus on Moth, closed together. */
export function createFleet(callback: Callback, mothUrl: string) {
  const devices: SimulatedDevice[] = [];
  async function register(overrides: Record<string, unknown> = {}): Promise<Registered> {
    const res = await request(callback).post('/devices').send(registration(overrides));
    if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as Registered;
  }
  return {
    register,
    /** Registers a device and connects it to its bus, answering every HEALTHCHECK. */
    device: async (
      options: Partial<SimulatedDeviceOptions> = {},
      overrides: Record<string, unknown> = {},
    ) => {
      const reg = await register(overrides);
      const device = new SimulatedDevice({
        mothUrl,
        channelPath: reg.channels.deviceManagement,
        token: reg.token,
        deviceId: reg.id,
        replyDelayMs: () => 20 + Math.random() * 150,
        ...options,
      });
      await device.connect();
      devices.push(device);
      return { reg, device, id: reg.id };
    },
    async close() {
      for (const d of devices) await d.close();
    },
  };
}
