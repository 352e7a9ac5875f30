// A fleet of robots for the bench, one socket each: joins every device's own bus (from FLEET_FILE:
// [{id, token, path}]) on MOTH_URL and answers each HEALTHCHECK within ANSWER_WITHIN_MS, as deployed
// robots do. With AT_ONCE=1 every socket opens at the same moment (a fleet powering on); otherwise
// 250 at a time. Prints `ready` once every socket is open, then a JSON line with the heartbeats sent,
// the foreign tokens seen and the TASK_ABORTED commands received so far, every 250 ms; with AT_ONCE,
// first a JSON line of when each robot's socket opened.
import { readFileSync } from 'node:fs';
import { SimulatedDevice } from '../src/dev/simulated-device';

const fleet = JSON.parse(readFileSync(process.env.FLEET_FILE!, 'utf8')) as {
  id?: string;
  token: string;
  path: string;
}[];
const within = Number(process.env.ANSWER_WITHIN_MS ?? 10);
/** task id -> when its TASK_ABORTED reached its robot. */
const aborted: Record<string, number> = {};
const devices = fleet.map(
  (d) =>
    new SimulatedDevice({
      mothUrl: process.env.MOTH_URL!,
      channelPath: d.path,
      token: d.token,
      replyDelayMs: () => Math.random() * within,
      keepReceived: false,
      onMessage: (msg) => {
        if (msg.type === 'TASK_ABORTED' && typeof msg.task_id === 'string')
          aborted[msg.task_id] ??= Date.now();
      },
    }),
);
if (process.env.AT_ONCE === '1') {
  const opened: Record<string, number> = {};
  await Promise.all(
    devices.map(async (d, i) => {
      await d.connect();
      opened[fleet[i]!.id ?? String(i)] = Date.now();
    }),
  );
  process.stdout.write(`${JSON.stringify({ opened })}\n`);
} else {
  for (let i = 0; i < devices.length; i += 250)
    await Promise.all(devices.slice(i, i + 250).map((d) => d.connect()));
}
process.stdout.write('ready\n');
setInterval(() => {
  let sent = 0;
  let foreign = 0;
  for (const d of devices) {
    sent += d.heartbeatsSent;
    foreign += d.foreignTokens;
  }
  process.stdout.write(`${JSON.stringify({ sent, foreign, aborted })}\n`);
}, 250);
