import { Worker } from 'node:worker_threads';
import type { HubOptions, HubStats } from './hub';

type Request = { id: number; op: 'start' | 'stop' | 'stats' | 'members'; args?: unknown[] };
type Reply = { id: number; ok: boolean; value?: unknown; error?: string };

/**
 * The embedded hub on a thread of its own. Moth timestamps frames as the network delivers them; a hub
 * sharing an event loop with busy work (the gateway in `npm start`, a test) would read several paced
 * frames in one late turn and lose them as a burst, harsher than Moth. Its own loop keeps it as strict
 * as Moth and no stricter.
 */
export class ThreadedMothHub {
  private readonly worker: Worker;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private listening = 0;

  constructor(options: HubOptions = {}) {
    // The thread loads TypeScript the way this process does (tsx), whatever started this process.
    const entry = new URL('./hub-worker.ts', import.meta.url).href;
    this.worker = new Worker(
      `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`,
      { eval: true, workerData: options },
    );
    this.worker.on('message', (reply: Reply) => {
      const w = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (reply.ok) w?.resolve(reply.value);
      else w?.reject(new Error(reply.error));
    });
    this.worker.on('error', (err: Error) => {
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  private call<T>(op: Request['op'], ...args: unknown[]): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, op, args } satisfies Request);
    });
  }

  /** Listens; resolves with the `ws://` base URL. */
  async start(): Promise<string> {
    const { url, port } = await this.call<{ url: string; port: number }>('start');
    this.listening = port;
    return url;
  }

  get port(): number {
    return this.listening;
  }

  /** Drops every connection and stops listening; the thread ends. */
  async stop(): Promise<void> {
    // A thread that already ended cannot answer; it is terminated all the same.
    await this.call('stop').catch(() => {});
    await this.worker.terminate();
  }

  stats(): Promise<HubStats> {
    return this.call('stats');
  }

  members(channelName: string, source = 'base', track = 'base'): Promise<number> {
    return this.call('members', channelName, source, track);
  }
}
