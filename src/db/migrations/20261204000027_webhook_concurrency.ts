import type { Knex } from 'knex';

// Each webhook says how many deliveries may be on their way to its receiver at once (16 before this
// was a setting of its own, and stays the default).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('webhooks', (t) => {
    t.integer('concurrency').notNullable().defaultTo(16);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('webhooks', (t) => {
    t.dropColumn('concurrency');
  });
}
