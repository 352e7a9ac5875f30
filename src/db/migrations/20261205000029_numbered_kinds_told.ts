import type { Knex } from 'knex';
import { up as numberInOneCall } from './20261204000028_number_in_one_call';

// The numbering's notification says which kinds of stream it numbered ('client', 'device' or both,
// space-separated), so the robots' command publisher is not woken by each of a storm's thousands of
// client events (a pass of several round trips each, in the busiest process) and the client stream's
// not by each command. Otherwise as before.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE OR REPLACE FUNCTION rollcall_number_pending(lock_key bigint, max_events int, notify text)
    RETURNS int LANGUAGE plpgsql AS $$
    DECLARE numbered int; client boolean; device boolean;
    BEGIN
      IF NOT pg_try_advisory_xact_lock(lock_key) THEN RETURN 0; END IF;
      WITH pending AS (
        SELECT id, CASE WHEN channel = 'client' THEN 'client'
                        ELSE 'device:' || coalesce(device_id::text, '') END AS stream
          FROM outbox WHERE seq IS NULL ORDER BY id LIMIT max_events
      ), next AS (
        SELECT p.id, p.stream,
               coalesce(s.last_seq, 0) + row_number() OVER (PARTITION BY p.stream ORDER BY p.id) AS seq
          FROM pending p LEFT JOIN event_streams s ON s.stream = p.stream
      ), updated AS (
        UPDATE outbox o SET stream = n.stream, seq = n.seq, numbered_at = clock_timestamp()
          FROM next n WHERE o.id = n.id
        RETURNING n.stream, n.seq
      ), counters AS (
        INSERT INTO event_streams (stream, last_seq)
        SELECT stream, max(seq) FROM updated GROUP BY stream
        ON CONFLICT (stream) DO UPDATE SET last_seq = GREATEST(event_streams.last_seq, EXCLUDED.last_seq)
      )
      SELECT count(*), coalesce(bool_or(stream = 'client'), false), coalesce(bool_or(stream <> 'client'), false)
        INTO numbered, client, device FROM updated;
      IF numbered > 0 THEN
        PERFORM pg_notify(notify, concat_ws(' ', CASE WHEN client THEN 'client' END,
                                                 CASE WHEN device THEN 'device' END));
      END IF;
      RETURN numbered;
    END $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP FUNCTION rollcall_number_pending(bigint, int, text)');
  await numberInOneCall(knex);
}
