-- Record a job's outcome and acknowledge its message, all or nothing.
-- KEYS[1] queue stream, KEYS[2] job hash, KEYS[3] dead stream, KEYS[4..] follow-up job hashes
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] stream entry id, ARGV[4] status (SUCCESS|DEAD),
-- ARGV[5] payload (result JSON, or error JSON when DEAD), ARGV[6] results ttl (s),
-- ARGV[7] reply channel or '', ARGV[8] job id, ARGV[9] envelope for the DLQ (DEAD only) or '',
-- ARGV[10] DLQ reason, ARGV[11] '1' to check ownership (fencing), ARGV[12..] follow-up envelopes
--
-- Fencing: only the consumer that still owns the entry may complete it. A worker that lost its
-- lease (frozen, partitioned) gets 0 and must drop its outcome. -1: this delivery's outcome
-- was recorded already (a retried call whose first reply was lost).
-- Order: the first write is a HSET (refused under maxmemory), so a job is never acked
-- without its outcome; once one write succeeded Redis lets the script finish.
--!include group_lost
--!include notify
if ARGV[11] == '1' then
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
  if #p == 0 then
    -- Acknowledged already: by this very call whose first reply was lost (-1), or by
    -- another worker (0). The job hash remembers which delivery recorded it. Or pending
    -- nowhere because the group that delivered it is gone: recorded below (group_lost).
    if redis.call('HGET', KEYS[2], 'by') == ARGV[2] .. '/' .. ARGV[3] then
      return -1
    end
    if not group_lost(KEYS[1], ARGV[1], ARGV[3], KEYS[2]) then
      return 0
    end
  elseif p[1][2] ~= ARGV[2] then
    return 0
  end
end
local status = ARGV[4]
-- The job this outcome names; '' when it names none. A job that succeeded keeps its one
-- terminal state: a DEAD outcome naming it (an undecodable entry written around the client
-- with its id, a second copy of it) goes to the DLQ without touching or naming it.
local named = ARGV[8]
if named ~= '' and status == 'DEAD' and redis.call('HGET', KEYS[2], 'status') == 'SUCCESS' then
  named = ''
end
if named ~= '' then
  if status == 'SUCCESS' then
    redis.call('HSET', KEYS[2], 'status', status, 'result', ARGV[5],
      'by', ARGV[2] .. '/' .. ARGV[3])
    redis.call('HDEL', KEYS[2], 'error', 'envelope')
  else
    redis.call('HSET', KEYS[2], 'status', status, 'error', ARGV[5],
      'by', ARGV[2] .. '/' .. ARGV[3])
    redis.call('HDEL', KEYS[2], 'result', 'envelope')
  end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
if status == 'DEAD' then
  redis.call('XADD', KEYS[3], '*', 'j', ARGV[9], 'reason', ARGV[10], 'id', named)
end
for i = 4, named ~= '' and #KEYS or 3 do
  redis.call('HSET', KEYS[i], 'status', 'SENT')
  redis.call('XADD', KEYS[1], '*', 'j', ARGV[8 + i])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
-- To the enqueuer and to every waiter registered on the record (watch.lua).
if named ~= '' then
  notify(KEYS[2], ARGV[7], ARGV[8] .. '\n' .. status .. '\n' .. ARGV[5])
end
return 1
