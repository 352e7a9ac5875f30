-- The devices of a shard that may be stale at round n: those not heard in the max + 1 latest valid
-- rounds, where max is the most rounds any device is allowed (the strictest policy); each device is
-- then judged by its own policy. Read-only. KEYS: heard, valid rounds, the round's claim list. ARGV:
-- n, max, offset, limit. Returns a page of {device id, last round heard} (oldest first), the valid
-- rounds after the page's oldest, up to n, and how many devices the claim list holds.
local n = tonumber(ARGV[1])
local claims = redis.call('HLEN', KEYS[3])
local v = redis.call('ZREVRANGEBYSCORE', KEYS[2], n, '-inf', 'LIMIT', tonumber(ARGV[2]), 1)[1]
if not v then return {{}, {}, claims} end
local page = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. v, 'WITHSCORES', 'LIMIT', tonumber(ARGV[3]), tonumber(ARGV[4]))
if #page == 0 then return {{}, {}, claims} end
return {page, redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. page[2], n), claims}
