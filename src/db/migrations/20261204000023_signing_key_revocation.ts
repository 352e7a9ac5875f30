import type { Knex } from 'knex';

// A signing key revoked (leaked, or suspected): unpublished at once, never used again.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('signing_keys', (t) => {
    t.timestamp('revoked_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('signing_keys', (t) => {
    t.dropColumn('revoked_at');
  });
}
