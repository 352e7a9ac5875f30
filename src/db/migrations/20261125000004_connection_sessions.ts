import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('connection_sessions', (t) => {
    t.uuid('id').primary();
    t.uuid('device_id').notNullable().references('devices.id');
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // The health-check round that was open when the session began.
    t.bigInteger('started_round').notNullable();
    t.timestamp('ended_at', { useTz: true });
    t.text('end_reason');
    t.integer('rounds_missed');
    t.bigInteger('last_round_heard');
    t.index(['device_id', 'started_at']);
  });
  await knex.schema.alterTable('devices', (t) => {
    t.bigInteger('connected_round');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => t.dropColumn('connected_round'));
  await knex.schema.dropTable('connection_sessions');
}
