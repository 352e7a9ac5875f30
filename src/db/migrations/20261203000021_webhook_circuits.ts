import type { Knex } from 'knex';

// Each webhook on its own: a receiver that keeps failing opens its circuit (nothing is sent to it
// until the cool-down has passed), and each webhook has its own fan-out cursor in the client stream,
// so the deliveries of receivers that answer are written (and sent) before those of failing ones.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('webhooks', (t) => {
    t.integer('consecutive_failures').notNullable().defaultTo(0);
    t.timestamp('circuit_open_until', { useTz: true });
    t.bigInteger('fanout_seq').notNullable().defaultTo(0);
  });
  await knex.raw(`UPDATE webhooks SET fanout_seq = (SELECT last_seq FROM webhook_fanout WHERE id = 1)`);
  // A delivery names its event; the body is read from the outbox, not copied for every webhook.
  await knex.raw(`ALTER TABLE webhook_deliveries ALTER COLUMN body DROP NOT NULL`);
  await knex.schema.dropTable('webhook_fanout');
  await knex.raw(
    `CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries (webhook_id, created_at) WHERE status = 'PENDING'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(
    `UPDATE webhook_deliveries d SET body = o.body FROM outbox o WHERE o.event_id = d.event_id AND d.body IS NULL`,
  );
  await knex.raw(`ALTER TABLE webhook_deliveries ALTER COLUMN body SET NOT NULL`);
  await knex.raw('DROP INDEX webhook_deliveries_backlog');
  await knex.schema.createTable('webhook_fanout', (t) => {
    t.integer('id').primary();
    t.bigInteger('last_seq').notNullable();
  });
  await knex.raw(
    `INSERT INTO webhook_fanout (id, last_seq) SELECT 1, coalesce(min(fanout_seq), 0) FROM webhooks`,
  );
  await knex.schema.alterTable('webhooks', (t) => {
    t.dropColumn('consecutive_failures');
    t.dropColumn('circuit_open_until');
    t.dropColumn('fanout_seq');
  });
}
