// The storm's SSE watchers, in a process of their own (the bench's process serves TGDM and Mantis,
// listens on Moth and reads the database while it measures, which would delay what it notes):
// WATCHERS of them read URL (with TOKEN) as fast as they can, the first TIMED noting when each event
// arrived. Prints `ready` once every stream answered; on SIGTERM writes to OUT what each timed
// watcher got and when ({timed: [[seq, at], ...][], counts: number[]}) and exits.
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';

const url = process.env.URL!;
const watchers = Number(process.env.WATCHERS);
const timedCount = Number(process.env.TIMED);

/** One watcher: what it received (and when, if timed), by seq. */
async function watch(timed: boolean) {
  const arrivals: [number, number][] = [];
  let received = 0;
  const req = request(url, { headers: { Authorization: `Bearer ${process.env.TOKEN}` } });
  await new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      let tail = '';
      res.on('data', (chunk: Buffer) => {
        const text = tail + chunk.toString();
        const cut = text.lastIndexOf('\n');
        tail = text.slice(cut + 1);
        const whole = text.slice(0, cut + 1);
        if (!timed) {
          // Counted, not parsed: the untimed watchers reading as fast as they can stay cheap.
          for (let i = whole.indexOf('\nid: '); i >= 0; i = whole.indexOf('\nid: ', i + 5)) received++;
          if (whole.startsWith('id: ')) received++;
          return;
        }
        const now = Date.now();
        for (const m of whole.matchAll(/^id: (\d+)$/gm)) {
          received++;
          arrivals.push([Number(m[1]), now]);
        }
      });
      res.on('error', () => {});
      resolve();
    });
    req.on('error', reject);
    req.end();
  });
  return { timed, arrivals, count: () => received };
}

const all = await Promise.all(Array.from({ length: watchers }, (_, i) => watch(i < timedCount)));
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  const result = {
    timed: all.filter((w) => w.timed).map((w) => w.arrivals),
    counts: all.map((w) => w.count()),
  };
  writeFileSync(process.env.OUT!, JSON.stringify(result));
  process.exit(0);
});
