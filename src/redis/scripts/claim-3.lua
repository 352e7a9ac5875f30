-- Moves devices judged stale for round n out of the shard's connected index into the round's claim
-- list, each only if it was not heard since it was judged (its score is still the round it was judged
-- on), atomically; then, when asked, returns the claim list (including what a crashed earlier run
-- claimed) with each device's last heartbeat time. KEYS: heard, claimed, last-seen. ARGV: limit,
-- whether to list, then per device its id, last round and missed rounds.
for i = 3, #ARGV, 3 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 2])
  end
end
if #ARGV > 2 then redis.call('EXPIRE', KEYS[2], 86400) end
if ARGV[2] ~= '1' then return {} end
local claimed = redis.call('HSCAN', KEYS[2], 0, 'COUNT', tonumber(ARGV[1]))[2]
local out = {}
for i = 1, #claimed, 2 do
  table.insert(out, claimed[i]); table.insert(out, claimed[i + 1])
  table.insert(out, redis.call('HGET', KEYS[3], claimed[i]) or '')
end
return out
