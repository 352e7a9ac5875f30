-- Records a batch of heartbeats of one shard in one round trip: checks each token hash against the
-- cache (it must name the device whose bus carried it), stamps the device with the round its shard
-- had open when the heartbeat arrived, and says which devices were absent from the connected index.
-- One bulk command per step, and an answer that names only the exceptions: this is the hot path.
-- A cached device id ending in '!' takes proofs only (protocol v2): a plain-token heartbeat of it is
-- refused as a downgrade; a proven heartbeat of a device not yet marked so is named as an upgrade.
-- KEYS: the shard's tokens, heard, last-seen. ARGV: now, the heard round, the echoed rounds ('' when
-- none echoed, else one comma-separated field per heartbeat, empty where none), then per heartbeat its
-- token hash and the device its bus belongs to (with '!' when it came as a proof). Returns the numbers
-- of stale echoes, of revoked, misplaced, unknown and downgraded tokens and of upgrades, the positions
-- (1-based) of the revoked, misplaced, unknown, downgraded and upgraded in that order, then the id of
-- each device absent from the index.
local now, round = ARGV[1], tonumber(ARGV[2])
local n = (#ARGV - 3) / 2
local hashes, expected = {}, {}
for i = 1, n do
  hashes[i] = ARGV[2 * i + 2]
  expected[i] = ARGV[2 * i + 3]
end
local ids = redis.call('HMGET', KEYS[1], unpack(hashes))
local echoes = {}
if ARGV[3] ~= '' then
  local i = 0
  for e in string.gmatch(ARGV[3] .. ',', '([^,]*),') do i = i + 1; echoes[i] = e end
end
local stale, revoked, misplaced, unknown, downgraded, upgraded = 0, {}, {}, {}, {}, {}
local live, scored, seen, k = {}, {}, {}, 0
for i = 1, n do
  local id, want = ids[i], expected[i]
  local proven = string.byte(want, -1) == 33
  if proven then want = string.sub(want, 1, -2) end
  local proofsOnly = id and string.byte(id, -1) == 33
  if proofsOnly then id = string.sub(id, 1, -2) end
  if not id then unknown[#unknown + 1] = i
  elseif id == '-' then revoked[#revoked + 1] = i
  elseif id ~= want then misplaced[#misplaced + 1] = i
  elseif proofsOnly and not proven then downgraded[#downgraded + 1] = i
  else
    if proven and not proofsOnly then upgraded[#upgraded + 1] = i end
    if echoes[i] and echoes[i] ~= '' and tonumber(echoes[i]) < round then stale = stale + 1
    else
      k = k + 1
      live[k] = id
      scored[2 * k - 1] = round
      scored[2 * k] = id
      seen[2 * k - 1] = id
      seen[2 * k] = now
    end
  end
end
local out = {stale, #revoked, #misplaced, #unknown, #downgraded, #upgraded}
for _, list in ipairs({revoked, misplaced, unknown, downgraded, upgraded}) do
  for j = 1, #list do out[#out + 1] = list[j] end
end
if k > 0 then
  local prev = redis.call('ZMSCORE', KEYS[2], unpack(live))
  local fresh = {}
  for j = 1, k do
    local id = live[j]
    if not prev[j] and not fresh[id] then
      fresh[id] = true
      out[#out + 1] = id
    end
  end
  redis.call('ZADD', KEYS[2], 'GT', unpack(scored))
  redis.call('HSET', KEYS[3], unpack(seen))
end
return out
