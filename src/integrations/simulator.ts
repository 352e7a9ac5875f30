import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SimulatedResource {
  readonly id: string;
  readonly body: Record<string, unknown>;
  active: boolean;
  readonly startedAt: number;
  stoppedAt?: number;
}

export interface Faults {
  /** Added to every answer. */
  latencyMs: number;
  /** Status of injected failures (e.g. 503). */
  failStatus: number;
  /** Fail every request until this time (epoch ms). */
  failUntil: number;
  /** Fail the next N requests. */
  failCount: number;
}

interface SimulatorSpec {
  readonly name: string;
  /** `recordings` (TGDM) or `streams` (Mantis). */
  readonly collection: string;
  readonly required: readonly string[];
  readonly answer: (r: SimulatedResource) => Record<string, unknown>;
}

/**
 * An HTTP server implementing one side of our TGDM or Mantis adapter contract, in memory, with fault
 * switches (latency, a burst of 5xx for a time or for N requests) settable in-process or over HTTP
 * (`POST /_sim/faults`), so tests and `npm start` users can make it fail on purpose.
 */
export class ContractSimulator {
  readonly resources = new Map<string, SimulatedResource>();
  private readonly byKey = new Map<string, string>();
  readonly faults: Faults = { latencyMs: 0, failStatus: 503, failUntil: 0, failCount: 0 };
  readonly stats = { starts: 0, stops: 0, failed: 0, requests: 0 };
  private server?: Server;

  constructor(private readonly spec: SimulatorSpec) {}

  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Answers `status` to every request for `ms` milliseconds. */
  failFor(ms: number, status = 503): void {
    this.faults.failUntil = Date.now() + ms;
    this.faults.failStatus = status;
  }

  active(): SimulatedResource[] {
    return [...this.resources.values()].filter((r) => r.active);
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    this.stats.requests++;
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    let body: Record<string, unknown> = {};
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString();
      body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      return send(400, { error: 'bad json' });
    }
    const path = new URL(req.url ?? '/', 'http://sim').pathname;
    if (req.method === 'POST' && path === '/_sim/faults') {
      Object.assign(this.faults, {
        ...(typeof body.latencyMs === 'number' ? { latencyMs: body.latencyMs } : {}),
        ...(typeof body.failStatus === 'number' ? { failStatus: body.failStatus } : {}),
        ...(typeof body.failCount === 'number' ? { failCount: body.failCount } : {}),
        ...(typeof body.failForMs === 'number' ? { failUntil: Date.now() + body.failForMs } : {}),
      });
      return send(200, this.faults);
    }
    if (this.faults.latencyMs > 0) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
    if (this.faults.failCount > 0 || Date.now() < this.faults.failUntil) {
      if (this.faults.failCount > 0) this.faults.failCount--;
      this.stats.failed++;
      return send(this.faults.failStatus, { error: `${this.spec.name} is failing on purpose` });
    }
    const base = `/${this.spec.collection}`;
    if (req.method === 'GET' && path === base) return send(200, [...this.resources.values()]);
    if (req.method === 'POST' && path === base) {
      const missing = this.spec.required.filter((f) => typeof body[f] !== 'string' || body[f] === '');
      if (missing.length > 0) return send(400, { error: `missing ${missing.join(', ')}` });
      const key = req.headers['idempotency-key'];
      const existing = typeof key === 'string' ? this.byKey.get(key) : undefined;
      if (existing) return send(201, this.spec.answer(this.resources.get(existing)!));
      const r: SimulatedResource = { id: randomUUID(), body, active: true, startedAt: Date.now() };
      this.resources.set(r.id, r);
      if (typeof key === 'string') this.byKey.set(key, r.id);
      this.stats.starts++;
      return send(201, this.spec.answer(r));
    }
    const stop = new RegExp(`^${base}/([^/]+)/stop$`).exec(path);
    if (req.method === 'POST' && stop) {
      const r = this.resources.get(decodeURIComponent(stop[1]!));
      if (!r) return send(404, { error: 'unknown' });
      if (!r.active) return send(409, { error: 'already stopped' });
      r.active = false;
      r.stoppedAt = Date.now();
      this.stats.stops++;
      return send(200, { id: r.id, stopped: true });
    }
    return send(404, { error: 'no such route' });
  }
}

export const createTgdmSimulator = () =>
  new ContractSimulator({
    name: 'TGDM',
    collection: 'recordings',
    required: ['uri', 'deviceId', 'track', 'policy'],
    answer: (r) => ({ id: r.id }),
  });

export const createMantisSimulator = () =>
  new ContractSimulator({
    name: 'Mantis',
    collection: 'streams',
    required: ['inputUri', 'deviceId', 'track', 'pipeline'],
    answer: (r) => ({
      id: r.id,
      outputUri: `/pang/ws/sub?channel=instant&name=mantis-${r.id}&source=base&track=${String(r.body.pipeline)}`,
    }),
  });
