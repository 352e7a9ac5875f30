import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { MothHub, type HubOptions } from './hub';

// The thread behind ThreadedMothHub: one hub, driven by messages. Moth runs on a machine of its own;
// sharing two cores with Postgres, Redis and every role, this thread is asked to be scheduled first
// (on Linux a thread has its own priority), so a CPU crowded by a Postgres restart does not bunch
// paced frames into a burst the real server would never see. Refused without the right, and then
// the hub still works, only more exposed to a crowded machine.
try {
  setPriority(0, -10);
} catch {
  // not allowed here: keep the default priority
}
const hub = new MothHub(workerData as HubOptions);
parentPort!.on('message', (req: { id: number; op: string; args?: unknown[] }) => {
  const args = (req.args ?? []) as [string, string, string];
  const run = async (): Promise<unknown> => {
    switch (req.op) {
      case 'start':
        return { url: await hub.start(), port: hub.port };
      case 'stop':
        await hub.stop();
        return null;
      case 'stats':
        return { ...hub.stats };
      case 'members':
        return hub.members(...args);
      default:
        throw new Error(`unknown op ${req.op}`);
    }
  };
  run().then(
    (value) => parentPort!.postMessage({ id: req.id, ok: true, value }),
    (err: Error) => parentPort!.postMessage({ id: req.id, ok: false, error: err.message }),
  );
});
