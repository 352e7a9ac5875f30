import pg from 'pg';
import type { Db } from './knex';

/** Sent at the commit of every transaction that wrote events (a trigger on the outbox). */
export const OUTBOX_WRITTEN = 'rollcall_outbox';
/**
 * Sent at the commit of every numbering: the streams have new events. Its payload names the kinds
 * of stream numbered, space-separated: `client` (the client stream), `device` (robots' commands).
 */
export const STREAMS_NUMBERED = 'rollcall_numbered';

/** Whether a numbering's payload names this kind of stream (no payload: maybe any). */
export const numberedKind = (payload: string | undefined, kind: 'client' | 'device'): boolean =>
  !payload || payload.split(' ').includes(kind);

/**
 * Calls `wake` at each notification on `channel` with its payload (none when it (re)connects: what
 * was notified before may be anything), from a connection of its own (Postgres delivers a NOTIFY at
 * its transaction's commit). A lost connection is told to `failed` and opened again a second
 * later; the caller polls as well, so a notification lost meanwhile only costs its poll period.
 */
export function listenFor(
  db: Db,
  channel: string,
  wake: (payload?: string) => void,
  failed: (err: Error) => void,
): { close(): Promise<void> } {
  const connection = (db.client as { config: { connection: string | pg.ClientConfig } }).config.connection;
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const reopen = (err: Error) => {
    failed(err);
    const lost = client;
    client = undefined;
    lost?.end().catch(() => {
      // Already broken: nothing left to close.
    });
    if (!closed) retry = setTimeout(() => void open(), 1000);
  };
  async function open(): Promise<void> {
    const c = new pg.Client(typeof connection === 'string' ? { connectionString: connection } : connection);
    client = c;
    c.on('notification', (n) => {
      if (n.channel === channel) wake(n.payload);
    });
    c.on('error', reopen);
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      // What was notified before this connection listened is picked up now.
      wake();
    } catch (err) {
      if (client === c) reopen(err as Error);
    }
  }
  void open();
  return {
    async close() {
      closed = true;
      clearTimeout(retry);
      await client?.end().catch(() => {
        // Already broken: nothing left to close.
      });
    },
  };
}
