import type { Knex } from 'knex';

// Health-check policy per device and per group: a device may belong to a group, and either may set
// how many consecutive misses it is allowed and an interval multiple (checked every k-th round). A
// value left null falls through: the device's own over its group's over the server setting. A group
// may also hold a maintenance window that covers all its devices.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('device_groups', (t) => {
    t.text('name').primary();
    t.integer('max_misses');
    t.integer('interval_multiple');
    t.timestamp('maintenance_until', { useTz: true });
    t.text('maintenance_reason');
    t.boolean('maintenance_stops_recordings');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.alterTable('devices', (t) => {
    t.text('group_name');
    t.integer('max_misses');
    t.integer('interval_multiple');
    t.index(['group_name'], 'devices_group_name');
  });
  // Evaluation reads the strictest policy each round: only devices with one of their own are scanned.
  await knex.raw(
    `CREATE INDEX devices_own_policy ON devices (id)
     WHERE deleted_at IS NULL AND (max_misses IS NOT NULL OR interval_multiple IS NOT NULL)`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS devices_own_policy');
  await knex.schema.alterTable('devices', (t) => {
    t.dropIndex(['group_name'], 'devices_group_name');
    t.dropColumn('group_name');
    t.dropColumn('max_misses');
    t.dropColumn('interval_multiple');
  });
  await knex.schema.dropTable('device_groups');
}
