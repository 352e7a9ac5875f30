-- Marks cached tokens as taking proofs only, where the cache still names their device unmarked (a
-- revoked token stays revoked). KEYS: the shard's tokens. ARGV: pairs of token hash and device id.
-- Returns 0.
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. '!')
  end
end
return 0
