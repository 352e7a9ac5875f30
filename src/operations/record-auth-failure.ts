import { clientEvent } from '../domain/events';
import type { Db } from '../db/knex';
import { appendEvents } from '../db/outbox';

/** A device refused on its own bus, told why (once a minute): operators see DEVICE_AUTH_FAILED. */
export const createRecordAuthFailure =
  (db: Db) =>
  async (refusal: { readonly deviceId: string; readonly code: string }): Promise<void> => {
    await appendEvents(db, [clientEvent('DEVICE_AUTH_FAILED', refusal.deviceId, { code: refusal.code })]);
  };
