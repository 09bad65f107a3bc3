#!lua name=segstats
-- Segment statistics: the one Redis procedure a segmenter calls per user.
--
-- KEYS: the user's HyperLogLog keys, hll:{<shard>}:<segment>:<yyyymmdd>,
--       all with the same hash tag {<shard>} so that the call stays in one
--       slot and runs on Redis Cluster.
-- ARGV[1]: the user id.
-- ARGV[2]: optional retention in days (stats.hll_retention_days, > 0) and
-- ARGV[3]: optional flags, one character per key: '1' = make sure this key
--       expires. A flagged key gets EXPIREAT <end of its day + retention>
--       (UTC, from the yyyymmdd that ends the key) unless it already has a
--       TTL (NX); the time is absolute, so it does not depend on when the key
--       was written. The writer flags each key the first time it touches it
--       (then again about hourly), so the expiry costs one command per key
--       per writer, not one per call; a call without ARGV[2] costs what it
--       always did. Given ARGV[2] without ARGV[3], every key whose sketch
--       changed (so every key created) is treated as flagged.
-- Returns the number of keys whose sketch changed (PFADD returned 1).
--
-- The same text serves two ways (stats/internal/stats_writer.cc):
--   * FUNCTION LOAD REPLACE <this file>, then FCALL seg_add_user n k1..kn user [days]
--     (Redis >= 7; must be loaded on every master, lost on a restart without
--     persistence: the writer reloads it on "Function not found");
--   * the file without its first (#!lua) line as an EVAL script, SCRIPT LOAD +
--     EVALSHA (Redis < 7, or ACLs without FUNCTION); here
--     redis.register_function is absent and the chunk runs add_user directly.
--     EXPIREAT's NX flag needs Redis 7; before that the expiry is set
--     without it (the same absolute time, so setting it again is harmless).
-- PFADD is idempotent, so a replayed call changes nothing.

-- Unix seconds at the end (next midnight UTC) of `day` (the yyyymmdd that
-- ends a key) plus `retention` days; nil when it is not a day.
local function expire_at(day, retention)
  local ymd = tonumber(day)
  if ymd == nil or ymd < 19700101 then
    return nil
  end
  local y = math.floor(ymd / 10000)
  local m = math.floor(ymd / 100) % 100
  local d = ymd % 100
  -- days_from_civil (H. Hinnant), integer arithmetic on doubles
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return (days + 1 + retention) * 86400
end

local function add_user(keys, args)
  local user = args[1]
  if user == nil then
    return redis.error_reply('ERR seg_add_user: missing user id argument')
  end
  local changed = 0
  if args[2] == nil then
    -- the common call: nothing to expire
    for i = 1, #keys do
      changed = changed + redis.call('PFADD', keys[i], user)
    end
    return changed
  end
  local retention = tonumber(args[2])
  if retention ~= nil and retention <= 0 then
    retention = nil
  end
  local flags = args[3]
  local has_nx, last_day, last_at
  for i = 1, #keys do
    local c = redis.call('PFADD', keys[i], user)
    if retention ~= nil and (flags == nil and c == 1 or flags ~= nil and string.byte(flags, i) == 49) then
      if has_nx == nil then
        has_nx = (redis.REDIS_VERSION_NUM or 0) >= 0x070000
      end
      -- keys of one call mostly share their day: compute its expiry once
      local day = string.sub(keys[i], -8)
      if day ~= last_day then
        last_day, last_at = day, expire_at(day, retention)
      end
      if last_at ~= nil then
        if has_nx then
          redis.call('EXPIREAT', keys[i], last_at, 'NX')
        else
          redis.call('EXPIREAT', keys[i], last_at)
        end
      end
    end
    changed = changed + c
  end
  return changed
end

if redis.register_function then
  redis.register_function{function_name = 'seg_add_user', callback = add_user}
else
  return add_user(KEYS, ARGV)
end
