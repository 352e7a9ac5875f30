import type { Knex } from 'knex';

// Ed25519 keys that sign events. The newest is the one in use; older ones stay published (their
// events, in the feed or in a client's log, still verify) until `retired_at`.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('private_key').notNullable();
    t.text('public_x').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('retired_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('signing_keys');
}
