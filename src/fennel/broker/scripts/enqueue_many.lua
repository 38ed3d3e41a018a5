-- Enqueue many jobs in one call (the bulk API): per job exactly what enqueue.lua does,
-- including its idempotence on the job id.
-- KEYS[1] queue stream
-- ARGV[1] job key prefix, then per job: job id, envelope
-- The job keys share the queue's hash tag, so they live in its Cluster slot.
-- Returns how many jobs were added (a retried call skips those already there).
local added = 0
for i = 2, #ARGV, 2 do
  local key = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'status', 'SENT')
    redis.call('XADD', KEYS[1], '*', 'j', ARGV[i + 1])
    added = added + 1
  end
end
return added
