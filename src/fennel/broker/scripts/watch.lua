-- Read the state of jobs a client is about to wait for, registering its reply channel on each
-- one that is not finished yet, in one atomic step: the outcome scripts publish a job's end to
-- the channel that enqueued it (reply_to) and to every channel registered here, so a waiter
-- that did not enqueue the job is woken too, and no outcome can land between read and
-- registration.
-- KEYS[1..] job hashes
-- ARGV[1] the waiter's reply channel
-- Returns per job [status, result, error] (all nil: no record, nothing registered), and for a
-- job not finished a fourth item, 0 when the registration was refused (maxmemory): the read
-- still answers, and the client registers again later. A record that expires takes its
-- watchers with it.
local out = {}
local mark = ARGV[1] .. '\n'
for i = 1, #KEYS do
  local s = redis.call('HMGET', KEYS[i], 'status', 'result', 'error')
  if s[1] and s[1] ~= 'SUCCESS' and s[1] ~= 'DEAD' then
    local w = redis.call('HGET', KEYS[i], 'watchers')
    local ok = 1
    if not w or not string.find('\n' .. w, '\n' .. mark, 1, true) then
      -- pcall: a write refused under maxmemory must not fail the read.
      if type(redis.pcall('HSET', KEYS[i], 'watchers', (w or '') .. mark)) == 'table' then
        ok = 0
      end
    end
    out[i] = {s[1], false, false, ok}
  else
    out[i] = s
  end
end
return out
