import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('recordings', (t) => {
    t.uuid('id').primary();
    t.uuid('device_id').notNullable().references('devices.id');
    // The connection session an AUTOMATIC recording belongs to (null for MANUAL ones).
    t.uuid('session_id').references('connection_sessions.id');
    t.text('track').notNullable();
    t.text('uri').notNullable();
    t.text('policy').notNullable().checkIn(['AUTOMATIC', 'MANUAL']);
    // STARTING: asked TGDM, answer not stored yet (a crash there is resolved by the retry).
    t.text('state').notNullable().checkIn(['STARTING', 'STARTED', 'STOPPED', 'FAILED']);
    t.text('tgdm_id');
    t.text('error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('stopped_at', { useTz: true });
    t.index(['device_id', 'created_at']);
  });
  await knex.raw(
    `CREATE UNIQUE INDEX recordings_session_track ON recordings (session_id, track) WHERE session_id IS NOT NULL`,
  );

  await knex.schema.createTable('analysis_streams', (t) => {
    t.uuid('id').primary();
    t.uuid('device_id').notNullable().references('devices.id');
    t.text('track').notNullable();
    t.text('pipeline').notNullable();
    t.text('input_uri').notNullable();
    t.text('output_uri');
    t.text('mantis_id');
    t.text('state').notNullable().checkIn(['ACTIVE', 'STOPPED', 'FAILED']);
    t.text('error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('stopped_at', { useTz: true });
    t.index(['device_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('analysis_streams');
  await knex.schema.dropTable('recordings');
}
