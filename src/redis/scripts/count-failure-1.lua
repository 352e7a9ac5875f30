-- Counts a failure in the window; gives the window's remaining milliseconds once beyond `max`.
-- KEYS: the address's counter. ARGV: max, window (ms). Returns 0 within the limit, else the
-- milliseconds left in the window (at least 1).
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n <= tonumber(ARGV[1]) then return 0 end
return math.max(1, redis.call('PTTL', KEYS[1]))
