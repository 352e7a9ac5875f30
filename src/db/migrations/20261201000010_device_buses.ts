import type { Knex } from 'knex';

// One device-management bus per device, named by an unguessable id issued at registration (never the
// device id, never derived from the token). Devices registered before get one here, from Postgres's
// strong random source. `heard_on_bus` says where the device was last heard: its own bus, or the
// fleet-wide shared bus of earlier versions (a robot not yet reconfigured).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.text('bus_id');
    t.text('heard_on_bus');
  });
  await knex.raw(
    `UPDATE devices SET bus_id = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')`,
  );
  // Also the default for rows inserted without one (bulk loads, tools): as unguessable as the others.
  await knex.raw(
    `ALTER TABLE devices ALTER COLUMN bus_id SET DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), ALTER COLUMN bus_id SET NOT NULL`,
  );
  await knex.raw(`ALTER TABLE devices ADD CONSTRAINT devices_bus_id_unique UNIQUE (bus_id)`);
  await knex.raw(
    `ALTER TABLE devices ADD CONSTRAINT devices_heard_on_bus_check CHECK (heard_on_bus IN ('own','shared'))`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.dropColumn('bus_id');
    t.dropColumn('heard_on_bus');
  });
}
