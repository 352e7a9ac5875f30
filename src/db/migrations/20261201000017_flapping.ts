import type { Knex } from 'knex';

// Flapping: when a device that keeps losing its link was marked as flapping (null: it is not), and
// when an effect may run at the earliest (a flapping device's connect effects wait a hold time).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.timestamp('flapping_since', { useTz: true });
  });
  await knex.raw('CREATE INDEX devices_flapping ON devices (id) WHERE flapping_since IS NOT NULL');
  await knex.schema.alterTable('effects', (t) => {
    t.timestamp('not_before', { useTz: true });
  });
  // A connect counts the device's recent failures.
  await knex.raw(
    `CREATE INDEX connection_sessions_failures ON connection_sessions (device_id, ended_at)
     WHERE end_reason = 'MISSED_HEARTBEATS'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS connection_sessions_failures');
  await knex.raw('DROP INDEX IF EXISTS devices_flapping');
  await knex.schema.alterTable('devices', (t) => t.dropColumn('flapping_since'));
  await knex.schema.alterTable('effects', (t) => t.dropColumn('not_before'));
}
