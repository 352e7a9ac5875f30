import type { Knex } from 'knex';

// A session remembers its last heartbeat when it ends, so the fleet page can draw the detection
// delay (end minus last heartbeat) of every worker from the history, and ranges of the history are
// read by end time.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('connection_sessions', (t) => {
    t.timestamp('last_heartbeat_at', { useTz: true });
    t.index(['ended_at'], 'connection_sessions_ended_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('connection_sessions', (t) => {
    t.dropIndex(['ended_at'], 'connection_sessions_ended_at');
    t.dropColumn('last_heartbeat_at');
  });
}
