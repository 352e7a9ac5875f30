import type { Knex } from 'knex';

// Events as durable, ordered feeds. Each published event belongs to a stream (`client`, or
// `device:<id>` for the commands sent to one robot) and gets the next number of its stream as it is
// first published, so a client that sees a number skipped on Moth knows it missed one and fetches it.
// The numbers are given by the one publisher holding the outbox lock, contiguous per stream.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('outbox', (t) => {
    t.text('stream');
    t.bigInteger('seq');
  });
  await knex.raw(`CREATE UNIQUE INDEX outbox_stream_seq ON outbox (stream, seq) WHERE seq IS NOT NULL`);
  await knex.schema.createTable('event_streams', (t) => {
    t.text('stream').primary();
    t.bigInteger('last_seq').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('event_streams');
  await knex.raw('DROP INDEX outbox_stream_seq');
  await knex.schema.alterTable('outbox', (t) => {
    t.dropColumn('stream');
    t.dropColumn('seq');
  });
}
