import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tasks', (t) => {
    t.uuid('id').primary();
    t.uuid('device_id').notNullable().references('devices.id');
    t.text('action').notNullable();
    t.jsonb('payload').notNullable();
    t.text('status')
      .notNullable()
      .defaultTo('PENDING')
      .checkIn(['PENDING', 'IN_PROGRESS', 'COMPLETED', 'REJECTED', 'ABORTED']);
    t.text('reason');
    t.jsonb('fail_point');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
    t.index(['device_id', 'created_at']);
  });
  await knex.raw(
    `CREATE INDEX tasks_open ON tasks (device_id, status, created_at) WHERE status IN ('PENDING','IN_PROGRESS')`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('tasks');
}
