#!lua name=segstats
-- Segment statistics: the one Redis procedure a segmenter calls per user.
--
-- KEYS: the user's HyperLogLog keys, hll:{<shard>}:<segment>:<yyyymmdd>,
--       all with the same hash tag {<shard>} so that the call stays in one
--       slot and runs on Redis Cluster.
-- ARGV[1]: the user id.
-- Returns the number of keys whose sketch changed (PFADD returned 1).
--
-- The same text serves two ways (stats/internal/stats_writer.cc):
--   * FUNCTION LOAD REPLACE <this file>, then FCALL seg_add_user n k1..kn user
--     (Redis >= 7; must be loaded on every master, lost on a restart without
--     persistence: the writer reloads it on "Function not found");
--   * the file without its first (#!lua) line as an EVAL script, SCRIPT LOAD +
--     EVALSHA (Redis < 7, or ACLs without FUNCTION); here
--     redis.register_function is absent and the chunk runs add_user directly.
-- PFADD is idempotent, so a replayed call changes nothing.

local function add_user(keys, args)
  local user = args[1]
  if user == nil then
    return redis.error_reply('ERR seg_add_user: missing user id argument')
  end
  local changed = 0
  for i = 1, #keys do
    changed = changed + redis.call('PFADD', keys[i], user)
  end
  return changed
end

if redis.register_function then
  redis.register_function{function_name = 'seg_add_user', callback = add_user}
else
  return add_user(KEYS, ARGV)
end
