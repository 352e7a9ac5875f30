import type { Knex } from 'knex';

// What operators changed: who (their token's label), what, when, from where, and the values before
// and after where they matter. Written in the transaction of the change itself; never a secret.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('audit_log', (t) => {
    t.bigIncrements('id');
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('actor').notNullable();
    t.text('address').notNullable();
    t.text('action').notNullable();
    t.text('target');
    t.jsonb('before');
    t.jsonb('after');
    t.index(['target', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_log');
}
