#!lua name=segstats
-- Segment statistics: the one Redis procedure a segmenter calls per user.
--
-- KEYS: the user's HyperLogLog keys, hll:{<shard>}:<segment>:<yyyymmdd>,
--       all with the same hash tag {<shard>} so that the call stays in one
--       slot and runs on Redis Cluster.
-- ARGV[1]: the user id.
-- ARGV[2]: optional retention in days (stats.hll_retention_days). When given
--       and > 0, a key whose sketch changed gets EXPIREAT <end of its day +
--       retention> (UTC, from the yyyymmdd at the end of the key) unless it
--       already has a TTL. A new key always changes, so every key this
--       procedure creates expires; the expiry is absolute, so it does not
--       depend on when the key was written. Unchanged sketches (the common
--       case for large segments) cost nothing extra. Callers that pass no
--       ARGV[2] (older writers) get no expiry.
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
  local retention = tonumber(args[2])
  if retention ~= nil and retention <= 0 then
    retention = nil
  end
  local changed = 0
  local has_nx, last_day, last_at
  for i = 1, #keys do
    local c = redis.call('PFADD', keys[i], user)
    if c == 1 and retention ~= nil then
      if has_nx == nil then
        has_nx = (redis.REDIS_VERSION_NUM or 0) >= 0x070000
      end
      -- keys of one call mostly share their day: compute its expiry once
      local day = string.sub(keys[i], -8)
      if day ~= last_day then
        last_day, last_at = day, expire_at(day, retention)
      end
      local at = last_at
      if at ~= nil then
        if has_nx then
          redis.call('EXPIREAT', keys[i], at, 'NX')
        else
          redis.call('EXPIREAT', keys[i], at)
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
