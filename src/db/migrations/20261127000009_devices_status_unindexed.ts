import type { Knex } from 'knex';

// An index on a two-valued column does not narrow a search much, and it makes every connect and
// disconnect a non-HOT update that writes a new entry into each of the devices indexes. Listing by
// status walks the creation-order index (seq) and filters; counting by status scans either way.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`DROP INDEX devices_status_live`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`CREATE INDEX devices_status_live ON devices (status) WHERE deleted_at IS NULL`);
}
