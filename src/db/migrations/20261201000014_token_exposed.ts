import type { Knex } from 'knex';

// When a device's current token was first heard in a text frame: Moth keeps a text frame as the
// track's MIME and replays it, token included, to every later joiner. Cleared when the token changes.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.timestamp('token_exposed_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.dropColumn('token_exposed_at');
  });
}
