// Every event of the fleet, once and in order, verified, resuming after a restart where it stopped.
// ROLLCALL_API=http://localhost:3000 ADMIN_TOKEN=... node watch.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { EventClient } from '@rollcall/client';

const client = new EventClient({
  api: process.env.ROLLCALL_API ?? 'http://localhost:3000',
  token: process.env.ADMIN_TOKEN,
  cursor: {
    load: () => Number(readFileSync('./watch.seq', { encoding: 'utf8', flag: 'a+' })) || 0,
    save: (seq) => writeFileSync('./watch.seq', String(seq)),
  },
  onEvent: (e) =>
    console.log(e.seq, e.type, e.deviceId ?? '', e.type === 'DEVICE_DISCONNECTED' ? e.reason : ''),
  onError: (err) => console.error('retrying:', err.message),
});
client.start();
process.once('SIGINT', () => client.stop().then(() => process.exit(0)));
