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

/**
 * An operator's configuration: health-check policies, groups, maintenance windows, webhooks and the
 * event-signing key. Each is one statement with no event; rounds, evaluation and the webhook fan-out
 * read it as they go, so a change applies from the next round (or delivery). A false answer means
 * nothing by that name or id exists.
 */
export function createConfigure(
  db: Db,
  webhookDestinations: DestinationPolicy,
  settings: () => Promise<SettingValues>,
) {
  return {
    devicePolicy: (id: string, change: { group?: string | null; policy: Partial<PolicyFields> }) =>
      updateDevicePolicy(db, id, change),
    deviceMaintenance: (id: string, window: Maintenance | null) => setMaintenance(db, id, window),
    groupPolicy: (name: string, policy: PolicyFields) => putGroupPolicy(db, name, policy),
    deleteGroup: (name: string) => deleteGroup(db, name),
    groupMaintenance: (name: string, window: Maintenance | null) => setGroupMaintenance(db, name, window),
    /** A URL at an address webhooks may not reach is refused here (a name, when resolved, at each delivery). */
    createWebhook: async (spec: WebhookSpec) => {
      const refusal = refusalOfUrl(webhookDestinations, spec.url);
      if (refusal) throw new AppError(400, 'WEBHOOK_URL_REFUSED', refusal);
      const limit = (await settings())['webhook.maxWebhooks'];
      if ((await countWebhooks(db)) >= limit)
        throw conflict('WEBHOOK_LIMIT_REACHED', `at most ${limit} webhooks (setting webhook.maxWebhooks)`, {
          limit,
        });
      return createWebhook(db, spec);
    },
    deleteWebhook: (id: string) => deleteWebhook(db, id),
    rotateSigningKey: () => rotateSigningKey(db),
    /** 404 SIGNING_KEY_NOT_FOUND when there is no such key. */
    revokeSigningKey: async (kid: string) => {
      if (!(await revokeSigningKey(db, kid)))
        throw new AppError(404, 'SIGNING_KEY_NOT_FOUND', `no signing key ${kid}`);
    },
  };
}

export type Configure = ReturnType<typeof createConfigure>;
