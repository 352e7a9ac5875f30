import { spawn, type ChildProcess } from 'node:child_process';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// The README's five minutes, with its example robot (docs/examples/robot.mjs) run as written.

describe("the README's quickstart robot", () => {
  let s: TestSystem;
  let robot: ChildProcess | undefined;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
  });
  afterAll(async () => {
    robot?.kill('SIGKILL');
    await s.close();
  });

  it('registers, connects, hears its command, and is disconnected once it stops', async () => {
    const reg = await s.register({ name: 'amr-1', actions: ['PATROL'] });
    let output = '';
    robot = spawn(process.execPath, ['docs/examples/robot.mjs'], {
      env: {
        PATH: process.env.PATH,
        MOTH_URL: s.config.MOTH_URL,
        BUS_PATH: reg.channels.deviceManagement,
        TOKEN: reg.token,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    robot.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    robot.stderr!.on('data', (d: Buffer) => (output += d.toString()));

    await s.waitStatus(reg.id, 'CONNECTED', 10_000);
    const feed = await request(s.callback).get('/events?limit=1000').set(s.admin);
    expect((feed.body as { events: { type: string; deviceId: string }[] }).events).toContainEqual(
      expect.objectContaining({ type: 'DEVICE_CONNECTED', deviceId: reg.id }),
    );
    const task = await request(s.callback)
      .post(`/devices/${reg.id}/tasks`)
      .set(s.admin)
      .send({ action: 'PATROL', payload: {} });
    expect(task.status).toBe(201);
    await waitFor(() => output.includes('TASK_REGISTERED'), 5000, 'the robot prints its command');

    robot.kill('SIGTERM');
    await s.waitStatus(reg.id, 'DISCONNECTED', 10_000);
    expect(output).toContain('on my bus');
  });
});
