-- Enqueue one job: record its status, then append its envelope to the queue stream.
-- KEYS[1] queue stream, KEYS[2] job hash
-- ARGV[1] envelope
-- Idempotent: a client retrying after a lost reply finds the job hash and adds nothing.
-- The hash is written first so that under maxmemory (noeviction) nothing at all is written.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], 'status', 'SENT')
redis.call('XADD', KEYS[1], '*', 'j', ARGV[1])
return 1
