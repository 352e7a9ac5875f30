import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // The ledger of connect/disconnect side effects, written with the transition that causes them,
  // so none is lost between a commit and a queue add.
  await knex.schema.createTable('effects', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('session_id').notNullable().references('connection_sessions.id');
    t.uuid('device_id').notNullable();
    t.text('kind').notNullable();
    t.text('status').notNullable().defaultTo('PENDING').checkIn(['PENDING', 'DONE', 'FAILED']);
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('done_at', { useTz: true });
    t.unique(['session_id', 'kind']);
  });
  await knex.raw(`CREATE INDEX effects_pending ON effects (created_at) WHERE status = 'PENDING'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('effects');
}
