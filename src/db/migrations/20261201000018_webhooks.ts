import type { Knex } from 'knex';

// Alerts by webhook: what an operator subscribed to, each delivery (one per webhook and event, so a
// re-run fans out nothing twice), and how far in the client event stream the fan-out has read.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('webhooks', (t) => {
    t.uuid('id').primary();
    t.text('url').notNullable();
    t.jsonb('events').notNullable();
    t.integer('offline_for_seconds');
    t.text('group_name');
    t.boolean('expected_disconnects').notNullable().defaultTo(false);
    // The key bodies are signed with: kept to sign, shown once at creation.
    t.text('secret').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('deleted_at', { useTz: true });
  });
  await knex.schema.createTable('webhook_deliveries', (t) => {
    t.uuid('id').primary();
    t.uuid('webhook_id').notNullable().references('webhooks.id');
    t.uuid('event_id').notNullable();
    t.text('event_type').notNullable();
    t.uuid('device_id');
    t.jsonb('body').notNullable();
    t.text('status')
      .notNullable()
      .defaultTo('PENDING')
      .checkIn(['PENDING', 'DELIVERED', 'FAILED', 'SKIPPED']);
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('last_status_code');
    t.text('last_error');
    t.timestamp('due_at', { useTz: true }).notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    t.unique(['webhook_id', 'event_id']);
    t.index(['webhook_id', 'created_at']);
  });
  await knex.raw(
    `CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (due_at) WHERE status = 'PENDING'`,
  );
  await knex.schema.createTable('webhook_fanout', (t) => {
    t.integer('id').primary();
    t.bigInteger('last_seq').notNullable();
  });
  await knex('webhook_fanout').insert({ id: 1, last_seq: 0 });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('webhook_fanout');
  await knex.schema.dropTable('webhook_deliveries');
  await knex.schema.dropTable('webhooks');
}
