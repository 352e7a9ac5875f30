// A fleet of robots for the bench, one socket each: joins every device's own bus (from FLEET_FILE:
// [{token, path}]) on MOTH_URL and answers each HEALTHCHECK within ANSWER_WITHIN_MS, as deployed
// robots do. Prints `ready` once every socket is open, then a JSON line with the
// heartbeats sent and the foreign tokens seen so far, every 250 ms.
import { readFileSync } from 'node:fs';
import { SimulatedDevice } from '../src/dev/simulated-device';

const fleet = JSON.parse(readFileSync(process.env.FLEET_FILE!, 'utf8')) as { token: string; path: string }[];
const within = Number(process.env.ANSWER_WITHIN_MS ?? 10);
const devices = fleet.map(
  (d) =>
    new SimulatedDevice({
      mothUrl: process.env.MOTH_URL!,
      channelPath: d.path,
      token: d.token,
      replyDelayMs: () => Math.random() * within,
      keepReceived: false,
    }),
);
for (let i = 0; i < devices.length; i += 250)
  await Promise.all(devices.slice(i, i + 250).map((d) => d.connect()));
process.stdout.write('ready\n');
setInterval(() => {
  let sent = 0;
  let foreign = 0;
  for (const d of devices) {
    sent += d.heartbeatsSent;
    foreign += d.foreignTokens;
  }
  process.stdout.write(`${JSON.stringify({ sent, foreign })}\n`);
}, 250);
