-- Records the facts of an issued round, once: the first write wins, so a re-run of the job that
-- issued it (or one that finds them missing after a crash between the two scripts) keeps the
-- first issue time and nonce.
-- KEYS: the round's meta hash.
-- ARGV: issuedAt (epoch ms), intervalSeconds, nonce.
-- Returns 1 when it wrote them, 0 when they were there.
if redis.call('HEXISTS', KEYS[1], 'issuedAt') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'issuedAt', ARGV[1], 'interval', ARGV[2], 'nonce', ARGV[3])
redis.call('EXPIRE', KEYS[1], 86400)
return 1
