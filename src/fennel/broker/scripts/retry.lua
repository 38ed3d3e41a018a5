-- Schedule the next attempt of a failed job and acknowledge the current message.
-- KEYS[1] queue stream, KEYS[2] job hash, KEYS[3] schedule zset
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] stream entry id, ARGV[4] envelope for the next
-- attempt, ARGV[5] delay (ms), ARGV[6] job id, ARGV[7] last error JSON
-- The due time comes from Redis TIME, never from a worker's clock.
-- True when the consumer group that delivered ENTRY is gone, so that nobody else can hold
-- it: Redis lost its data (the job's record went with it) or the group was destroyed and
-- recreated (the new group's last-delivered id is older than ENTRY: it never handed ENTRY
-- out). The job's record is then all that is left, so the outcome is recorded there without
-- an acknowledgement (there is nothing to acknowledge), and the entry, if the stream still
-- has it, is deleted so the new group never runs it again. Otherwise an entry pending nowhere
-- was finished by whoever owned it after us (its record names this entry): fenced out.
local function group_lost(stream, group, entry, job)
  local by = redis.call('HGET', job, 'by')
  if by and string.sub(by, -#entry - 1) == '/' .. entry then
    return false
  end
  if redis.call('EXISTS', job) == 0 then
    return true
  end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == group then
      local lm, ls = string.match(f['last-delivered-id'], '^(%d+)-(%d+)$')
      local em, es = string.match(entry, '^(%d+)-(%d+)$')
      if not em then return false end
      lm, ls, em, es = tonumber(lm), tonumber(ls), tonumber(em), tonumber(es)
      return em > lm or (em == lm and es > ls)
    end
  end
  return false
end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 then
  -- Already acknowledged: by this delivery (a retried call, -1) or another worker (0);
  -- or the group that delivered it is gone (group_lost): scheduled below all the same.
  if redis.call('HGET', KEYS[2], 'by') == ARGV[2] .. '/' .. ARGV[3] then
    return -1
  end
  if not group_lost(KEYS[1], ARGV[1], ARGV[3], KEYS[2]) then
    return 0
  end
elseif p[1][2] ~= ARGV[2] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], 'status', 'RETRY', 'envelope', ARGV[4], 'error', ARGV[7],
  'by', ARGV[2] .. '/' .. ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[6])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
