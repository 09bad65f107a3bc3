#!lua name=segstats
-- Segment statistics: the Redis procedures the segmenters' stats writer calls
-- (stats/writer/internal/stats_writer.cc). Three functions, three argument contracts:
--
-- seg_add_users_v2 (the writer's default since issue #18): many users per call.
-- KEYS: n distinct HyperLogLog keys, hll:{<shard>}:<segment>:<yyyymmdd>, all
--       in one Redis Cluster slot (the writer groups a batch's adds per slot).
-- ARGV[1]: retention in days (stats.hll_retention_days); "0" or "" = none.
-- ARGV[2]: flags, one character per key ('1' = make sure this key expires,
--       see below), or "" = no key flagged.
-- ARGV[3 .. n+2]: c_1 .. c_n, how many members each key gets.
-- ARGV[n+3 ..]: the members: c_1 for KEYS[1], then c_2 for KEYS[2], ...
--       (sum c_i of them; checked before anything is written).
-- One PFADD per key with all its members (in slices of kUnpackSlice, under
-- Lua's stack limit for unpack). Returns the number of keys whose sketch
-- changed (some PFADD on it returned 1).
--
-- seg_add_users_v3 (the writer's default since issue #17): v2 plus the
-- stats epochs, so that a writer notices when Redis lost its data.
-- KEYS: m epoch keys hll:{<shard>}:epoch, then v2's n HLL keys (all in one
--       slot, as in v2).
-- ARGV[1]: m. ARGV[2 .. m+1]: the epoch the writer believes each epoch key
--       holds ("" = not known).
-- ARGV[m+2 ..]: v2's arguments (days, flags, counts, members).
-- An epoch key that is missing gets a new epoch (the server's time in us):
-- it is created with the first data of its shard and lost only with it
-- (a restart without persistence, FLUSHALL). Then the adds, as v2.
-- Returns {changed, i_1, epoch_1, i_2, epoch_2, ...}: changed as v2, then
-- for every epoch key whose value is not what the caller sent, its index
-- (1-based, into the m epoch keys) and its value now.
--
-- seg_add_user (the contract before v2, kept so that writers of both versions
-- run side by side during a rolling upgrade): one user per call.
-- KEYS: the user's keys, as above (one hash tag {<shard>}, one slot).
-- ARGV[1]: the user id.
-- ARGV[2]: optional retention in days (stats.hll_retention_days, > 0) and
-- ARGV[3]: optional flags, one character per key, as above. Given ARGV[2]
--       without ARGV[3], every key whose sketch changed (so every key
--       created) is treated as flagged.
-- Returns the number of keys whose sketch changed (PFADD returned 1).
--
-- Expiry (both): a flagged key gets EXPIREAT <end of its day + retention>
-- (UTC, from the yyyymmdd that ends the key) unless it already has a TTL
-- (NX); the time is absolute, so it does not depend on when the key was
-- written. The writer flags each key the first time it touches it (then
-- again about hourly), so the expiry costs one command per key per writer,
-- not one per call.
--
-- The same text serves two ways:
--   * FUNCTION LOAD REPLACE <this file> registers all three, then
--     FCALL seg_add_users_v3 m+n e1..em k1..kn m x1..xm days flags c1..cn members...
--     (Redis >= 7; must be loaded on every master, lost on a restart without
--     persistence: the writer reloads it on "Function not found"). An older
--     writer loading its own copy (fewer functions) drops the newer ones until
--     a newer writer next sees "Function not found" and loads this one again;
--   * without its first (#!lua) line, plus one line naming the entry point
--     ("return add_users_v3(KEYS, ARGV)", "return add_users(KEYS, ARGV)" or
--     "return add_user(KEYS, ARGV)"), as
--     an EVAL script, SCRIPT LOAD + EVALSHA (Redis < 7, or ACLs without
--     FUNCTION); redis.register_function is absent there. EXPIREAT's NX flag
--     needs Redis 7; before that the expiry is set without it (the same
--     absolute time, so setting it again is harmless).
-- PFADD is idempotent, so a replayed or retried call changes nothing; a call
-- that failed half-way (some PFADDs done) is simply sent again whole.

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

-- EXPIREAT NX (or plain before Redis 7) at the end of the key's day plus
-- `retention`; `memo` caches the last day's time (keys of a call mostly
-- share a handful of days).
local function expire_key(key, retention, memo)
  if memo.has_nx == nil then
    memo.has_nx = (redis.REDIS_VERSION_NUM or 0) >= 0x070000
  end
  local day = string.sub(key, -8)
  if day ~= memo.day then
    memo.day, memo.at = day, expire_at(day, retention)
  end
  if memo.at ~= nil then
    if memo.has_nx then
      redis.call('EXPIREAT', key, memo.at, 'NX')
    else
      redis.call('EXPIREAT', key, memo.at)
    end
  end
end

-- Members per PFADD: unpack() pushes them all on the Lua C stack, which holds
-- at most LUAI_MAXCSTACK (8000) values.
local kUnpackSlice = 4000

-- The v2 layout from keys[k0 + 1] and args[a0 + 1] on (v3 puts its epoch
-- keys and arguments in front). Checks the layout before the first write, so
-- that a malformed call changes nothing: returns nil and the error reply, or
-- a function that does the adds and returns how many keys changed.
local function plan_adds(keys, k0, args, a0, name)
  local n = #keys - k0
  local nargs = #args - a0
  if nargs < n + 2 then
    return nil, redis.error_reply('ERR ' .. name .. ': want days, flags and ' .. n ..
                                  ' member counts, got ' .. nargs .. ' arguments')
  end
  local flags = args[a0 + 2]
  if #flags ~= 0 and #flags ~= n then
    return nil, redis.error_reply('ERR ' .. name .. ': ' .. #flags .. ' flags for ' .. n .. ' keys')
  end
  local retention = tonumber(args[a0 + 1])
  if retention ~= nil and retention <= 0 or #flags == 0 then
    retention = nil
  end
  local counts = {}
  local total = 0
  for i = 1, n do
    local c = tonumber(args[a0 + 2 + i])
    if c == nil or c < 0 or c ~= math.floor(c) then
      return nil, redis.error_reply('ERR ' .. name .. ': bad member count for key ' .. i)
    end
    counts[i] = c
    total = total + c
  end
  if nargs ~= n + 2 + total then
    return nil, redis.error_reply('ERR ' .. name .. ': member counts add up to ' .. total ..
                                  ', got ' .. (nargs - n - 2) .. ' members')
  end
  return function()
    local changed = 0
    local memo = {}
    local at = a0 + n + 3
    for i = 1, n do
      local key = keys[k0 + i]
      local stop = at + counts[i] - 1
      local c = 0
      while at <= stop do
        local last = math.min(stop, at + kUnpackSlice - 1)
        if redis.call('PFADD', key, unpack(args, at, last)) == 1 then
          c = 1
        end
        at = last + 1
      end
      if retention ~= nil and string.byte(flags, i) == 49 then
        expire_key(key, retention, memo)
      end
      changed = changed + c
    end
    return changed
  end
end

local function add_users(keys, args)
  local run, err = plan_adds(keys, 0, args, 0, 'seg_add_users_v2')
  if run == nil then
    return err
  end
  return run()
end

-- A new epoch value: the server's time in microseconds. Unique enough: two
-- data losses of one Redis in the same microsecond do not happen, and the
-- value is only ever compared for equality.
local function new_epoch()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end

local function add_users_v3(keys, args)
  local m = tonumber(args[1])
  if m == nil or m < 0 or m ~= math.floor(m) or m > #keys or #args < m + 1 then
    return redis.error_reply('ERR seg_add_users_v3: bad epoch key count ' .. tostring(args[1]))
  end
  local run, err = plan_adds(keys, m, args, m + 1, 'seg_add_users_v3')
  if run == nil then
    return err
  end
  -- An epoch key is gone only with the data it guards (a restart without
  -- persistence, FLUSHALL): a new epoch makes every writer's marks void.
  local reply = {0}
  for i = 1, m do
    local current = redis.call('GET', keys[i])
    if not current then
      current = new_epoch()
      redis.call('SET', keys[i], current)
    end
    if current ~= args[1 + i] then
      reply[#reply + 1] = i
      reply[#reply + 1] = current
    end
  end
  reply[1] = run()
  return reply
end

if redis.register_function then
  redis.register_function{function_name = 'seg_add_user', callback = add_user}
  redis.register_function{function_name = 'seg_add_users_v2', callback = add_users}
  redis.register_function{function_name = 'seg_add_users_v3', callback = add_users_v3}
  return
end
-- EVAL/EVALSHA: the writer appends the entry point's line here.
