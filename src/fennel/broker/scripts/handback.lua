-- Give an unfinished job back to the queue at once (graceful shutdown), without using a retry.
-- KEYS[1] queue stream, KEYS[2] job hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] stream entry id, ARGV[4] envelope
--!include group_lost
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
local mine
if #p > 0 then
  mine = p[1][2] == ARGV[2]
else
  mine = group_lost(KEYS[1], ARGV[1], ARGV[3], KEYS[2])
end
if not mine then
  return 0
end
redis.call('XADD', KEYS[1], '*', 'j', ARGV[4])
if redis.call('HGET', KEYS[2], 'status') == 'EXECUTING' then
  redis.call('HSET', KEYS[2], 'status', 'SENT')
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
