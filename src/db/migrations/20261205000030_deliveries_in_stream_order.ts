import type { Knex } from 'knex';

// A delivery carries its event's number in the client stream: the deliveries of one fan-out share
// their `created_at`, so the backlog's bound kept a random few of them rather than the newest, and
// the pump sent a page in no particular order. Rows of older versions take their event's number.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE webhook_deliveries ADD COLUMN seq bigint');
  await knex.raw(
    `UPDATE webhook_deliveries d SET seq = o.seq FROM outbox o WHERE o.event_id = d.event_id AND d.seq IS NULL`,
  );
  await knex.raw('DROP INDEX webhook_deliveries_backlog');
  await knex.raw(
    `CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries (webhook_id, seq) WHERE status = 'PENDING'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX webhook_deliveries_backlog');
  await knex.raw(
    `CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries (webhook_id, created_at) WHERE status = 'PENDING'`,
  );
  await knex.raw('ALTER TABLE webhook_deliveries DROP COLUMN seq');
}
