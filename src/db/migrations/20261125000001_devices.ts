import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('devices', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    // Creation order for stable cursor pagination.
    t.bigIncrements('seq', { primaryKey: false }).notNullable().unique();
    t.text('name').notNullable();
    t.text('token_hash').notNullable().unique();
    t.text('public_channel').notNullable().unique();
    t.jsonb('tracks').notNullable();
    t.jsonb('actions').notNullable();
    t.text('status').notNullable().defaultTo('DISCONNECTED');
    t.integer('status_version').notNullable().defaultTo(0);
    t.uuid('current_session_id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('connected_at', { useTz: true });
    t.timestamp('disconnected_at', { useTz: true });
    t.timestamp('last_heartbeat_at', { useTz: true });
    t.timestamp('deleted_at', { useTz: true });
  });
  await knex.raw(
    `ALTER TABLE devices ADD CONSTRAINT devices_status_check CHECK (status IN ('DISCONNECTED','CONNECTED'))`,
  );
  // A deleted device keeps its history but frees its name.
  await knex.raw(`CREATE UNIQUE INDEX devices_name_live_unique ON devices (name) WHERE deleted_at IS NULL`);
  await knex.raw(`CREATE INDEX devices_status_live ON devices (status) WHERE deleted_at IS NULL`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('devices');
}
