import { readFileSync } from 'node:fs';

/** Kills a server left running by an earlier run that died without cleaning up (pid file). */
export function killOrphan(pidFile: string, expectedCommand: RegExp): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  } catch {
    return;
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
