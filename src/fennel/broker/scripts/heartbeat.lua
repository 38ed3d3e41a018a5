-- A worker's heartbeat: stamp it alive, forget workers that stopped beating, and remove the
-- consumers of dead workers. One script, so that nothing can happen between the check and
-- the delete: a consumer whose read lands between them would lose its just-delivered
-- entries from the pending list (XGROUP DELCONSUMER drops them), and nobody would ever own
-- or reclaim them.
-- KEYS[1] queue stream, KEYS[2] workers zset, KEYS[3] workers info hash
-- ARGV[1] group, ARGV[2] this consumer, ARGV[3] its info JSON, ARGV[4] seconds without a
-- beat after which a worker is dead, ARGV[5] idle (ms) after which a dead worker's consumer
-- may be removed
-- Returns the consumers removed.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[4])))
if #stale > 0 then
  redis.call('ZREM', KEYS[2], unpack(stale))
  redis.call('HDEL', KEYS[3], unpack(stale))
end
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  -- Never a consumer that owns pending entries: they would vanish with it.
  if f['pending'] == 0 and f['idle'] > tonumber(ARGV[5])
      and not redis.call('ZSCORE', KEYS[2], f['name']) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed[#removed + 1] = f['name']
  end
end
return removed
