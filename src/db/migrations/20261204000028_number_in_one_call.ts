import type { Knex } from 'knex';

// Numbering a batch of events took eight round trips (begin, the lock, the events, their streams'
// counters, the numbers, the counters, the notification, commit), each 10-50 ms while a fleet's
// storm loads the machine: every reader of the streams waited for them. It is now one call. Each
// statement of a PL/pgSQL function reads with a snapshot of its own, taken after the lock is held,
// so it sees everything the last holder numbered. An event's stream: 'client', or 'device:<id>' for
// a robot's commands.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE FUNCTION rollcall_number_pending(lock_key bigint, max_events int, notify text)
    RETURNS int LANGUAGE plpgsql AS $$
    DECLARE numbered int;
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
      SELECT count(*) INTO numbered FROM updated;
      IF numbered > 0 THEN PERFORM pg_notify(notify, ''); END IF;
      RETURN numbered;
    END $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP FUNCTION rollcall_number_pending(bigint, int, text)');
}
