import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET } from '../support/app';
import { lastSession, startTestSystem, waitFor, type TestSystem } from '../support/system';

// The README's five minutes, with its example robot (docs/examples/robot.mjs, on the robot SDK) and
// its example watcher (docs/examples/watch.mjs, on the event client) run as written.

describe("the README's quickstart", () => {
  let s: TestSystem;
  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
    dir = mkdtempSync(join(tmpdir(), 'quickstart-'));
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs an example from a folder of its own (where it keeps its files), collecting what it prints. */
  function run(example: string, env: Record<string, string>) {
    const child = spawn(process.execPath, [resolve('docs/examples', example)], {
      cwd: dir,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const out = { text: '' };
    child.stdout.on('data', (d: Buffer) => (out.text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out.text += d.toString()));
    return { child, out };
  }

  it('a robot from the SDK registers and connects, the watcher sees it, the task is done, the goodbye is PLANNED', async () => {
    const api = await s.serve();
    const watcher = run('watch.mjs', { ROLLCALL_API: api, ADMIN_TOKEN: s.config.ADMIN_TOKEN });
    const robot = run('robot.mjs', {
      ROLLCALL_API: api,
      DEVICE_SECRET_KEY: SECRET,
    });

    await waitFor(() => robot.out.text.includes('on my bus'), 15_000, 'the robot on its bus');
    const { id } = JSON.parse(readFileSync(join(dir, 'amr-1.json'), 'utf8')) as { id: string };
    await s.waitStatus(id, 'CONNECTED', 10_000);
    await waitFor(() => watcher.out.text.includes(`DEVICE_CONNECTED ${id}`), 10_000, 'the watcher sees it');

    const task = await request(s.callback)
      .post(`/devices/${id}/tasks`)
      .set(s.admin)
      .send({ action: 'PATROL', payload: {} })
      .expect(201);
    const taskId = (task.body as { id: string }).id;
    await waitFor(
      async () =>
        ((await request(s.callback).get(`/tasks/${taskId}`).set(s.admin)).body as { status: string })
          .status === 'COMPLETED',
      10_000,
      'the robot completes its task',
    );
    expect(robot.out.text).toContain(`TASK_REGISTERED PATROL ${taskId}`);

    robot.child.kill('SIGINT');
    await s.waitStatus(id, 'DISCONNECTED', 3000);
    expect((await lastSession(s, id)).endReason).toBe('PLANNED');
    await waitFor(
      () => watcher.out.text.includes(`DEVICE_DISCONNECTED ${id} PLANNED`),
      10_000,
      'the watcher',
    );
    // Each event once, in order: the numbers the watcher printed run 1, 2, 3, ... without a gap.
    const seqs = watcher.out.text
      .split('\n')
      .flatMap((l) => (/^\d+ /.test(l) ? [Number(l.split(' ')[0])] : []));
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });
});
