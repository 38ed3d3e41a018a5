-- Move due jobs from the schedule to the queue. Atomic, so any number of workers may run it
-- at once and each job is promoted exactly once.
-- KEYS[1] schedule zset, KEYS[2] queue stream
-- ARGV[1] job key prefix, ARGV[2] batch size
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local env = redis.call('HGET', key, 'envelope')
  if env then
    redis.call('XADD', KEYS[2], '*', 'j', env)
    redis.call('HDEL', key, 'envelope')
  end
  redis.call('ZREM', KEYS[1], id)
end
return #ids
