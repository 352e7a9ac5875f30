import type { Knex } from 'knex';

// Protocol v2: `proofs_since` is when a device first answered with a liveness proof. From then on a
// heartbeat carrying its plain token is refused (no downgrade), whatever token it holds.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.timestamp('proofs_since', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('devices', (t) => {
    t.dropColumn('proofs_since');
  });
}
