import type { Knex } from 'knex';

// An effect is named by its session and kind, and every query looks it up that way. The surrogate
// uuid key was never read, yet each disconnect paid a random-uuid index insert for each of its rows.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE effects DROP CONSTRAINT effects_pkey`);
  await knex.raw(`ALTER TABLE effects DROP COLUMN id`);
  await knex.raw(`ALTER TABLE effects DROP CONSTRAINT effects_session_id_kind_unique`);
  await knex.raw(`ALTER TABLE effects ADD PRIMARY KEY (session_id, kind)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE effects DROP CONSTRAINT effects_pkey`);
  await knex.raw(
    `ALTER TABLE effects ADD CONSTRAINT effects_session_id_kind_unique UNIQUE (session_id, kind)`,
  );
  await knex.raw(`ALTER TABLE effects ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY`);
}
