import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRow } from '../../src/db/audit';
import { SECRET } from '../support/app';
import { startTestSystem, type TestSystem } from '../support/system';

// The audit log after a day's worth of operator actions, by two operators with tokens of their own.

const ALICE = 'alice-token-'.padEnd(44, 'a');
/** The registration secret the first test sets (and sets back). */
const NEW_SECRET = 'a-new-registration-secret-0001';

describe('the audit log', () => {
  let s: TestSystem;
  const alice = { Authorization: `Bearer ${ALICE}` };
  beforeAll(async () => {
    s = await startTestSystem({ env: { ADMIN_TOKENS: `alice=${ALICE}` } });
  });
  afterAll(() => s.close());

  const audit = async (query = '') =>
    (await request(s.callback).get(`/audit?limit=1000${query}`).set(alice).expect(200)).body as {
      entries: AuditRow[];
      last: number;
    };

  it('records who changed what, when and from where, in order, and never a secret', async () => {
    const a = await s.register({ name: 'amr-a', actions: ['PATROL'] });
    const b = await s.register({ name: 'amr-b' });
    const api = request(s.callback);
    await api
      .patch('/server-settings')
      .set(alice)
      .send({ device: { healthcheckMaxConsecutiveMisses: 5, secretKey: NEW_SECRET } })
      .expect(200);
    const rotated = (await api.post(`/devices/${a.id}/token`).set(s.admin).expect(200)).body as {
      token: string;
    };
    const until = new Date(Date.now() + 3_600_000).toISOString();
    await api.post(`/devices/${b.id}/maintenance`).set(alice).send({ until, reason: 'wheel' }).expect(200);
    await api.delete(`/devices/${b.id}/maintenance`).set(alice).expect(204);
    await api
      .put('/device-groups/dock')
      .set(s.admin)
      .send({ healthcheck: { maxConsecutiveMisses: 4 } })
      .expect(200);
    await api.patch(`/devices/${b.id}`).set(s.admin).send({ group: 'dock' }).expect(200);
    await api.delete('/device-groups/dock').set(s.admin).expect(204);
    const hook = (
      await api
        .post('/webhooks')
        .set(alice)
        .send({ url: 'http://127.0.0.1:9/hook', events: ['DEVICE_DISCONNECTED'] })
        .expect(201)
    ).body as { id: string; secret: string };
    await api.delete(`/webhooks/${hook.id}`).set(alice).expect(204);
    const { kid } = (await api.post('/signing-keys/rotate').set(s.admin).expect(200)).body as { kid: string };
    const task = (await api.post(`/devices/${a.id}/tasks`).set(alice).send({ action: 'PATROL' }).expect(201))
      .body as { id: string };
    await api.post(`/tasks/${task.id}/abort`).set(alice).expect(200);
    const many = (
      await api
        .post('/devices/tokens/rotate')
        .set(s.admin)
        .send({ ids: [b.id] })
        .expect(200)
    ).body as {
      rotated: { token: string }[];
    };
    await api.delete(`/devices/${a.id}`).set(alice).expect(204);
    // Refused or finding nothing: nothing changed, nothing recorded.
    await api.delete(`/devices/${a.id}`).set(alice).expect(404);
    await api.delete('/device-groups/nowhere').set(alice).expect(404);

    const log = await audit();
    expect(log.entries.map((e) => [e.actor, e.action, e.target])).toEqual([
      ['alice', 'settings.changed', null],
      ['admin', 'device.token_rotated', a.id],
      ['alice', 'device.maintenance_opened', b.id],
      ['alice', 'device.maintenance_closed', b.id],
      ['admin', 'group.policy_set', 'dock'],
      ['admin', 'device.policy_changed', b.id],
      ['admin', 'group.deleted', 'dock'],
      ['alice', 'webhook.created', hook.id],
      ['alice', 'webhook.deleted', hook.id],
      ['admin', 'signing_key.rotated', kid],
      ['alice', 'task.created', a.id],
      ['alice', 'task.aborted', a.id],
      ['admin', 'device.token_rotated', b.id],
      ['alice', 'device.deleted', a.id],
    ]);
    expect(log.entries[0]).toMatchObject({
      before: { 'device.healthcheckMaxConsecutiveMisses': 2 },
      after: { 'device.healthcheckMaxConsecutiveMisses': 5, 'device.secretKey': '(changed)' },
    });
    expect(log.entries.at(-1)!.before).toEqual({ name: 'amr-a', status: 'DISCONNECTED' });
    for (const e of log.entries) {
      expect(e.address).toMatch(/127\.0\.0\.1$/);
      expect(Date.now() - Date.parse(e.at)).toBeLessThan(60_000);
    }
    const text = JSON.stringify(log);
    for (const secret of [
      NEW_SECRET,
      rotated.token,
      many.rotated[0]!.token,
      hook.secret,
      ALICE,
      s.config.ADMIN_TOKEN,
    ])
      expect(text).not.toContain(secret);

    // One device's story, and the pages after the last.
    expect((await audit(`&target=${b.id}`)).entries.map((e) => e.action)).toEqual([
      'device.maintenance_opened',
      'device.maintenance_closed',
      'device.policy_changed',
      'device.token_rotated',
    ]);
    expect((await audit(`&after=${log.last}`)).entries).toEqual([]);
    await api
      .patch('/server-settings')
      .set(alice)
      .send({ device: { secretKey: SECRET } })
      .expect(200);
  });

  it('keeps a change and its record together: when the record cannot be written, the change is not made', async () => {
    const d = await s.register({ name: 'amr-kept' });
    await s.db.raw(
      `ALTER TABLE audit_log ADD CONSTRAINT refuse_deletes CHECK (action <> 'device.deleted') NOT VALID`,
    );
    try {
      const res = await request(s.callback).delete(`/devices/${d.id}`).set(s.admin);
      expect(res.status).toBe(500);
    } finally {
      await s.db.raw('ALTER TABLE audit_log DROP CONSTRAINT refuse_deletes');
    }
    await request(s.callback).get(`/devices/${d.id}`).set(s.admin).expect(200);
    const feed = (await request(s.callback).get('/events?limit=1000').set(s.admin)).body as {
      events: { type: string; deviceId: string }[];
    };
    expect(feed.events.filter((e) => e.deviceId === d.id).map((e) => e.type)).toEqual(['DEVICE_REGISTERED']);
    expect((await audit(`&target=${d.id}`)).entries).toEqual([]);
  });

  it('is for operators only', async () => {
    const d = await s.register({ name: 'amr-curious' });
    await request(s.callback).get('/audit').expect(401);
    await request(s.callback)
      .get('/audit')
      .set({ Authorization: `Bearer ${d.token}` })
      .expect(403);
    await request(s.callback).get('/audit?limit=0').set(alice).expect(400);
  });
});
