-- Move one dead job back to the queue with a fresh retry budget. Exactly once: the XDEL
-- decides which of several concurrent replays wins.
-- KEYS[1] dead stream, KEYS[2] queue stream, KEYS[3] job hash
-- ARGV[1] dead entry id, ARGV[2] envelope, ARGV[3] '0' when the entry names no job (an
-- undecodable entry whose id could not be read: its raw bytes go back, and no job hash)
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[3] ~= '0' then
  redis.call('HSET', KEYS[3], 'status', 'SENT')
  redis.call('HDEL', KEYS[3], 'result', 'error', 'envelope')
  redis.call('PERSIST', KEYS[3])
end
redis.call('XADD', KEYS[2], '*', 'j', ARGV[2])
return 1
