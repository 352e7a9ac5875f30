import type { Knex } from 'knex';

// A webhook whose receiver keeps failing opens its circuit: its deliveries wait, holding no delivery
// slot, until the circuit's cool-down has passed, so it delays only itself.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('webhooks', (t) => {
    t.integer('consecutive_failures').notNullable().defaultTo(0);
    t.timestamp('circuit_open_until', { useTz: true });
  });
  await knex.raw(
    `CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries (webhook_id, created_at) WHERE status = 'PENDING'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX webhook_deliveries_backlog');
  await knex.schema.alterTable('webhooks', (t) => {
    t.dropColumn('consecutive_failures');
    t.dropColumn('circuit_open_until');
  });
}
