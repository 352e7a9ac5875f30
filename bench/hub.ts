// The embedded Moth hub as a process of its own, for the bench: its sockets (two per robot: the
// robot's and the gateway's) count against this process's open-file limit only. Prints its URL.
import { setPriority } from 'node:os';
import { MothHub } from '../src/moth/hub';

// Scheduled first where allowed, as Moth would be on a machine of its own (see src/moth/hub-worker.ts).
try {
  setPriority(0, -10);
} catch {
  // not allowed here
}

const hub = new MothHub();
process.stdout.write(`${await hub.start()}\n`);
process.once('SIGTERM', () => void hub.stop().then(() => process.exit(0)));
