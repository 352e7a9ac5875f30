-- Takes, renews and releases a gateway's shard leases in one atomic step. A lease is granted when it
-- is free, expired or already ours. KEYS: the lease hash. ARGV: gateway, now, ttl, up to when the
-- gateway has caught up with its buses ('' = it cannot vouch), the number of shards to release, those
-- shards, then per shard wanted: shard, since ('' = not held yet), users.
-- A lease is stored as owner|since|expires|users|caughtUp. Returns the shards granted.
local me, now, ttl, caughtUp = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local releases = tonumber(ARGV[5])
for i = 6, 5 + releases do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.match(cur, '^([^|]*)') == me then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
local granted = {}
for i = 6 + releases, #ARGV, 3 do
  local shard = ARGV[i]
  local cur = redis.call('HGET', KEYS[1], shard)
  local owner, expires
  if cur then owner, expires = string.match(cur, '^([^|]*)|[^|]*|([^|]*)') end
  if not cur or owner == me or tonumber(expires) < now then
    redis.call('HSET', KEYS[1], shard,
      me .. '|' .. ARGV[i + 1] .. '|' .. (now + ttl) .. '|' .. ARGV[i + 2] .. '|' .. caughtUp)
    granted[#granted + 1] = shard
  end
end
return granted
