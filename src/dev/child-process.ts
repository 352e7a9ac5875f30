import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

/** Stdout lines kept per child (the oldest are dropped past this). */
const KEPT_LINES = 10_000;

export interface RunOptions {
  readonly args?: readonly string[];
  readonly nodeArgs?: readonly string[];
  /** The whole environment of this process under `env` (default: PATH and HOME only). */
  readonly inheritEnv?: boolean;
}

/** A TypeScript entry point run in a child process: stdout as lines, a clean stop, how it exited. */
export interface Child {
  readonly child: ChildProcess;
  /** Stdout, line by line (the last KEPT_LINES). */
  readonly lines: readonly string[];
  /** The last stderr written (4 KB). */
  stderr(): string;
  /** The first JSON log line whose `msg` is this, parsed. */
  logged(msg: string): Record<string, unknown> | undefined;
  /** Resolves with the first stdout line matching, or rejects after `ms`. */
  waitLine(test: (line: string) => boolean, ms?: number): Promise<string>;
  /** Its exit code and signal, and how long after the last `signal()` it came (-1 if none). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it exited. */
  stop(): Promise<void>;
}

const running = new Set<Child>();

/** Stops every child still running (a test or bench section failed half-way). */
export async function stopChildren(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop()));
}

export const parseLog = (line: string): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // not a JSON log line: a child's plain output
  }
};

/** Matches a JSON log line with this `msg`. */
export const jsonLine = (msg: string) => (line: string) => parseLog(line)?.msg === msg;

/** A child's last lines of output, and a wait for the first line, kept or coming, that passes a test. */
function keepLines(stdout: Readable) {
  const lines: string[] = [];
  const waiters = new Set<{ test: (l: string) => boolean; resolve: (l: string) => void }>();
  let buffer = '';
  stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    for (let i; (i = buffer.indexOf('\n')) >= 0;) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      lines.push(line);
      if (lines.length > KEPT_LINES) lines.shift();
      for (const w of waiters) {
        if (!w.test(line)) continue;
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  const waitLine = (test: (l: string) => boolean, ms: number, timedOut: () => Error) => {
    const found = lines.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(timedOut()), ms);
      waiters.add({ test, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  };
  return { lines, waitLine };
}

export function runTs(
  script: string,
  env: Record<string, string | undefined>,
  options: RunOptions = {},
): Child {
  const base = options.inheritEnv ? process.env : { PATH: process.env.PATH, HOME: process.env.HOME };
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), '--import', 'tsx', script, ...(options.args ?? [])],
    { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const { lines, waitLine } = keepLines(child.stdout);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let signalledAt = 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) =>
    child.once('exit', (code, signal) =>
      resolve({ code, signal, ms: signalledAt ? Date.now() - signalledAt : -1 }),
    ),
  );
  const handle: Child = {
    child,
    lines,
    stderr: () => stderr,
    logged: (msg) => lines.map(parseLog).find((l) => l?.msg === msg),
    waitLine: (test, ms = 30_000) =>
      waitLine(test, ms, () => new Error(`${script}: no matching line in ${ms} ms\n${stderr}`)),
    exited,
    signal(sig) {
      signalledAt = Date.now();
      child.kill(sig);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      handle.signal('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
  running.add(handle);
  void exited.then(() => running.delete(handle));
  return handle;
}
