import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Kills a server left running by an earlier run that died without cleaning up (pid file). */
export function killOrphan(pidFile: string, expectedCommand: RegExp): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  } catch {
    return; // no pid file: nothing was left running
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (expectedCommand.test(cmd)) process.kill(pid, 'SIGKILL');
  } catch {
    // not running any more
  }
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Claims `dir` for this process (a pid file). Throws when another live process holds it, so two
 * instances never share one data folder (and never kill each other's servers as orphans).
 */
export function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'rollcall.pid');
  try {
    const owner = Number(readFileSync(file, 'utf8'));
    if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
      throw new Error(`DATA_DIR ${dir} is in use by process ${owner}; stop it or choose another DATA_DIR`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  writeFileSync(file, String(process.pid));
  return () => rmSync(file, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // no such process
  }
}

/** Stops a process and its children (SIGSTOP) for ms: a stall, as a busy or swapping host has. */
export async function stallProcess(pidFile: string, ms: number): Promise<void> {
  await stallPid(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), ms);
}

/** Stops process `pid` and its children (SIGSTOP) for ms. */
export async function stallPid(pid: number, ms: number): Promise<void> {
  // pgrep exits 1 when there are none.
  const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean);
  const all = [pid, ...children.map(Number)];
  try {
    for (const p of all) process.kill(p, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    for (const p of all) process.kill(p, 'SIGCONT');
  }
}
