import type { Knex } from 'knex';

// Events are numbered within moments of their commit, by a sequencer, whether Moth is up or not;
// publication on Moth marks them published later, each stream on its own. The sequencer reads the
// events not yet numbered, each stream's publisher its own stream's numbered events not yet on Moth.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE INDEX outbox_unnumbered ON outbox (id) WHERE seq IS NULL`);
  await knex.raw(
    `CREATE INDEX outbox_numbered_unpublished ON outbox (stream, seq) WHERE published_at IS NULL AND seq IS NOT NULL`,
  );
  // When each was numbered: what the feed's latency is measured from (commit is created_at at most).
  await knex.schema.alterTable('outbox', (t) => {
    t.timestamp('numbered_at', { useTz: true });
  });
  // The sequencer hears of new events at their commit (a NOTIFY is delivered then), not at a poll.
  await knex.raw(`CREATE FUNCTION rollcall_outbox_written() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('rollcall_outbox', ''); RETURN NULL; END $$`);
  await knex.raw(`CREATE TRIGGER outbox_written AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION rollcall_outbox_written()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TRIGGER outbox_written ON outbox');
  await knex.raw('DROP FUNCTION rollcall_outbox_written()');
  await knex.schema.alterTable('outbox', (t) => {
    t.dropColumn('numbered_at');
  });
  await knex.raw('DROP INDEX outbox_numbered_unpublished');
  await knex.raw('DROP INDEX outbox_unnumbered');
}
