-- Schedule the next attempt of a failed job and acknowledge the current message.
-- KEYS[1] queue stream, KEYS[2] job hash, KEYS[3] schedule zset
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] stream entry id, ARGV[4] envelope for the next
-- attempt, ARGV[5] delay (ms), ARGV[6] job id, ARGV[7] last error JSON
-- The due time comes from Redis TIME, never from a worker's clock.
--!include group_lost
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
