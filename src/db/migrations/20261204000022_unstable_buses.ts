import type { Knex } from 'knex';

// A device whose bus the gateway keeps losing (src/domain/bus-losses.ts): since when it has been
// marked unstable, and when its bus was last lost while marked (the mark ends once it holds a while).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.timestamp('bus_unstable_since', { useTz: true });
    t.timestamp('bus_lost_at', { useTz: true });
  });
  // Every evaluation looks for marks to end: an index of the few marked, as for flapping.
  await knex.raw('CREATE INDEX devices_bus_unstable ON devices (id) WHERE bus_unstable_since IS NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS devices_bus_unstable');
  await knex.schema.alterTable('devices', (t) => {
    t.dropColumn('bus_unstable_since');
    t.dropColumn('bus_lost_at');
  });
}
