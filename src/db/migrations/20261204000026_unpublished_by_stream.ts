import type { Knex } from 'knex';

// The client stream and the robots' command streams are published apart, and during a fleet's storm
// the client stream holds thousands of events Moth has not taken yet (its channel carries ~190 a
// second). One index over both made each read of the robots' commands walk that backlog (6 ms a
// read, hundreds of reads a storm): each now has its own.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `CREATE INDEX outbox_client_unpublished ON outbox (seq)
      WHERE stream = 'client' AND published_at IS NULL AND seq IS NOT NULL`,
  );
  await knex.raw(
    `CREATE INDEX outbox_commands_unpublished ON outbox (stream, seq)
      WHERE stream <> 'client' AND published_at IS NULL AND seq IS NOT NULL`,
  );
  await knex.raw('DROP INDEX outbox_numbered_unpublished');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(
    `CREATE INDEX outbox_numbered_unpublished ON outbox (stream, seq) WHERE published_at IS NULL AND seq IS NOT NULL`,
  );
  await knex.raw('DROP INDEX outbox_commands_unpublished');
  await knex.raw('DROP INDEX outbox_client_unpublished');
}
