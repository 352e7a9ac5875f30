-- Issues a round number for a scheduler job, once: a re-run of the same job (after a stall) gets the
-- same number back; a tick scheduled too soon after the previous round's tick (a scheduler that fired
-- early after a reschedule) gets none. Gaps are measured between *scheduled* times, so a tick that
-- ran a little late does not cost the next one. The round's facts are written next, by
-- round-meta.lua (their key names the number issued here).
-- KEYS: the round counter, this job's issued round, the last issued tick's scheduled time.
-- ARGV: scheduledAt, minGapMs.
-- Returns {round, 1} when it issued the round, {round, 0} for a re-run, {0, 0} for a tick too soon.
local existing = redis.call('GET', KEYS[2])
if existing then return {tonumber(existing), 0} end
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[1]) - last < tonumber(ARGV[2]) then return {0, 0} end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'EX', 3600)
redis.call('SET', KEYS[3], ARGV[1])
return {n, 1}
