// The embedded Moth hub as a process of its own, for the bench: its sockets (two per robot: the
// robot's and the gateway's) count against this process's open-file limit only. Prints its URL.
import { MothHub } from '../src/moth/hub';

const hub = new MothHub();
process.stdout.write(`${await hub.start()}\n`);
process.once('SIGTERM', () => void hub.stop().then(() => process.exit(0)));
