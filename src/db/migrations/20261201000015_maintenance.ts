import type { Knex } from 'knex';

// A maintenance window an operator opened on a device: until when, why, and whether its recordings
// are stopped should it go silent meanwhile (no other disconnect effect runs, no alert is raised).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.timestamp('maintenance_until', { useTz: true });
    t.text('maintenance_reason');
    t.boolean('maintenance_stops_recordings');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.dropColumn('maintenance_until');
    t.dropColumn('maintenance_reason');
    t.dropColumn('maintenance_stops_recordings');
  });
}
