-- Record the success of many jobs (no callbacks) in one call: the worker's hot path.
-- Per job exactly what complete.lua does for SUCCESS, with the same fencing and answers
-- (1 recorded, 0 another consumer owns the entry, -1 this delivery recorded it already).
-- KEYS[1] queue stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] results ttl (s), ARGV[4] job key prefix,
-- then per job: entry id, job id, result JSON, reply channel or ''
-- The job keys share the queue's hash tag, so they live in its Cluster slot.
--!include group_lost
--!include notify
local out, acked = {}, {}
local by = ARGV[2] .. '/'
for i = 5, #ARGV, 4 do
  local entry, id, result, reply = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = ARGV[4] .. id
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
  if #p == 0 and redis.call('HGET', key, 'by') == by .. entry then
    out[#out + 1] = -1
  elseif #p == 0 and not group_lost(KEYS[1], ARGV[1], entry, key) then
    out[#out + 1] = 0
  elseif #p > 0 and p[1][2] ~= ARGV[2] then
    out[#out + 1] = 0
  else
    -- HSET first: under maxmemory the first one is refused and nothing at all is written.
    redis.call('HSET', key, 'status', 'SUCCESS', 'result', result, 'by', by .. entry)
    redis.call('HDEL', key, 'error', 'envelope')
    redis.call('EXPIRE', key, ARGV[3])
    notify(key, reply, id .. '\nSUCCESS\n' .. result)
    acked[#acked + 1] = entry
    out[#out + 1] = 1
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
return out
