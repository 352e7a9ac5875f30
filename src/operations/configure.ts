import type { PolicyFields } from '../domain/policy';
import { refusalOfUrl, type DestinationPolicy } from '../domain/destinations';
import { AppError, conflict } from '../domain/errors';
import type { WebhookSpec } from '../domain/webhooks';
import { setMaintenance, updateDevicePolicy, type Maintenance } from '../db/devices';
import type { Db } from '../db/knex';
import { deleteGroup, putGroupPolicy, setGroupMaintenance } from '../db/policies';
import { revokeSigningKey, rotateSigningKey } from '../db/signing-keys';
import { countWebhooks, createWebhook, deleteWebhook } from '../db/webhooks';
import type { SettingValues } from '../domain/settings';
import type { Actor } from '../domain/operators';
import { audited } from './audited';

/**
 * An operator's configuration: health-check policies, groups, maintenance windows, webhooks and the
 * event-signing key. Each is one statement with no event, and its audit row in the same transaction;
 * rounds, evaluation and the webhook fan-out read it as they go, so a change applies from the next
 * round (or delivery). A false answer means nothing by that name or id exists.
 */
export function createConfigure(
  db: Db,
  webhookDestinations: DestinationPolicy,
  settings: () => Promise<SettingValues>,
) {
  return {
    devicePolicy: (
      actor: Actor,
      id: string,
      change: { group?: string | null; policy: Partial<PolicyFields> },
    ) =>
      audited(db, actor, (trx) => updateDevicePolicy(trx, id, change), {
        action: 'device.policy_changed',
        target: id,
        after: change,
      }),
    deviceMaintenance: (actor: Actor, id: string, window: Maintenance | null) =>
      audited(db, actor, (trx) => setMaintenance(trx, id, window), maintenanceEntry(id, window)),
    groupPolicy: (actor: Actor, name: string, policy: PolicyFields) =>
      audited(db, actor, (trx) => putGroupPolicy(trx, name, policy), {
        action: 'group.policy_set',
        target: name,
        after: policy,
      }),
    deleteGroup: (actor: Actor, name: string) =>
      audited(db, actor, (trx) => deleteGroup(trx, name), { action: 'group.deleted', target: name }),
    groupMaintenance: (actor: Actor, name: string, window: Maintenance | null) =>
      audited(
        db,
        actor,
        (trx) => setGroupMaintenance(trx, name, window),
        maintenanceEntry(name, window, 'group'),
      ),
    /** A URL at an address webhooks may not reach is refused here (a name, when resolved, at each delivery). */
    createWebhook: (actor: Actor, spec: WebhookSpec) =>
      addWebhook(db, actor, spec, webhookDestinations, settings),
    deleteWebhook: (actor: Actor, id: string) =>
      audited(db, actor, (trx) => deleteWebhook(trx, id), { action: 'webhook.deleted', target: id }),
    rotateSigningKey: (actor: Actor) =>
      audited(
        db,
        actor,
        (trx) => rotateSigningKey(trx),
        (kid) => ({ action: 'signing_key.rotated', target: kid }),
      ),
    /** 404 SIGNING_KEY_NOT_FOUND when there is no such key. */
    revokeSigningKey: async (actor: Actor, kid: string) => {
      const revoked = await audited(db, actor, (trx) => revokeSigningKey(trx, kid), {
        action: 'signing_key.revoked',
        target: kid,
      });
      if (!revoked) throw new AppError(404, 'SIGNING_KEY_NOT_FOUND', `no signing key ${kid}`);
    },
  };
}

async function addWebhook(
  db: Db,
  actor: Actor,
  spec: WebhookSpec,
  destinations: DestinationPolicy,
  settings: () => Promise<SettingValues>,
) {
  const refusal = refusalOfUrl(destinations, spec.url);
  if (refusal) throw new AppError(400, 'WEBHOOK_URL_REFUSED', refusal);
  const limit = (await settings())['webhook.maxWebhooks'];
  if ((await countWebhooks(db)) >= limit)
    throw conflict('WEBHOOK_LIMIT_REACHED', `at most ${limit} webhooks (setting webhook.maxWebhooks)`, {
      limit,
    });
  // Its secret is shown once, to its creator, and never recorded.
  return audited(
    db,
    actor,
    (trx) => createWebhook(trx, spec),
    (w) => ({ action: 'webhook.created', target: w.id, after: spec }),
  );
}

const maintenanceEntry = (target: string, window: Maintenance | null, of: 'device' | 'group' = 'device') =>
  window
    ? { action: `${of}.maintenance_opened`, target, after: window }
    : { action: `${of}.maintenance_closed`, target };

export type Configure = ReturnType<typeof createConfigure>;
