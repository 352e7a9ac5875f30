import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('server_settings', (t) => {
    t.text('key').primary();
    t.jsonb('value').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  // The registration secret is an operational secret: kept apart from ordinary settings, hashed.
  await knex.schema.createTable('registration_secret', (t) => {
    t.smallint('id').primary().checkIn(['1']);
    t.text('salt').notNullable();
    t.text('hash').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('registration_secret');
  await knex.schema.dropTable('server_settings');
}
