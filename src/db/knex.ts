import knexFactory, { type Knex } from 'knex';
import { migrationSource } from './migrations/index';

export type Db = Knex;
export type Tx = Knex.Transaction;
/** Either the pool or an open transaction: every query function takes one of these. */
export type Queryable = Knex | Knex.Transaction;

export interface PoolOptions {
  /**
   * Commits return before their WAL reaches the disk (`synchronous_commit = off`): a crash of the
   * database loses the last few hundred milliseconds of commits, never consistency. Only for work
   * that a lost commit merely repeats (at-least-once bookkeeping).
   */
  readonly asyncCommit?: boolean;
}

export function knexConfig(databaseUrl: string, poolMax = 10, options: PoolOptions = {}): Knex.Config {
  return {
    client: 'pg',
    connection: databaseUrl,
    pool: {
      min: 0,
      max: poolMax,
      ...(options.asyncCommit && {
        afterCreate: (
          conn: { query: (sql: string, done: (err?: Error) => void) => void },
          done: (err?: Error) => void,
        ) => conn.query('SET synchronous_commit = off', done),
      }),
    },
    migrations: { migrationSource, tableName: 'knex_migrations' },
  };
}

export function createDb(databaseUrl: string, poolMax?: number, options?: PoolOptions): Db {
  return knexFactory(knexConfig(databaseUrl, poolMax, options));
}

/** Applies every pending migration; safe to run from several processes at once (knex takes a lock). */
export async function migrateLatest(db: Db): Promise<void> {
  await db.migrate.latest();
}

/** Postgres' unique_violation, optionally on a named constraint. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === '23505' && (constraint === undefined || e.constraint === constraint);
}
