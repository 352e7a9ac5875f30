import { WebSocket } from 'ws';
import type { Config } from '../../src/config';

export type PlatformEventSeen = {
  type: string;
  eventId: string;
  deviceId: string | null;
  [k: string]: unknown;
};

/** A client on the event channel, as the operator UI would be: every event it heard, in order. */
export async function listenForEvents(config: Pick<Config, 'channels' | 'MOTH_URL'>) {
  const events: PlatformEventSeen[] = [];
  let socket: WebSocket | undefined;
  let connectedAt = 0;
  let junk = 0;
  async function connect(): Promise<void> {
    const key = config.channels.clientKey;
    const ws = new WebSocket(`${config.MOTH_URL}${config.channels.clientEvents}${key ? `&key=${key}` : ''}`);
    // A member of the channel may send anything: what is not an event is skipped, as a client must.
    ws.on('message', (d) => {
      try {
        events.push(JSON.parse((d as Buffer).toString('utf8')) as PlatformEventSeen);
      } catch {
        junk++;
      }
    });
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // Moth drops a member that neither sends nor pings for its idle timeout (30 s), receiving or not.
    const ping = setInterval(() => ws.readyState === WebSocket.OPEN && ws.ping(), 10_000);
    ws.once('close', () => clearInterval(ping));
    socket = ws;
    connectedAt = Date.now();
  }
  await connect();
  return {
    events,
    /** Connects again (after the hub restarted); rejects while the hub is down. */
    connect,
    /** When it last joined the channel (epoch ms): what was sent before, it cannot have heard. */
    connectedAt: () => connectedAt,
    /** Frames heard that were not JSON. */
    junk: () => junk,
    eventsOf: (deviceId: string, type?: string) =>
      events.filter((e) => e.deviceId === deviceId && (type === undefined || e.type === type)),
    close: () => socket?.terminate(),
  };
}
