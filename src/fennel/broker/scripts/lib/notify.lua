-- Included by the scripts that record a terminal outcome (see _load_scripts in broker/redis.py).
-- Publishes MESSAGE to the channel of the client that enqueued the job (REPLY, '' for none)
-- and to every channel registered on the job's record by a waiter (watch.lua), each once. One
-- HGET when nobody else waits.
local function notify(job, reply, message)
  if reply ~= '' then
    redis.call('PUBLISH', reply, message)
  end
  local w = redis.call('HGET', job, 'watchers')
  if w then
    for channel in string.gmatch(w, '[^\n]+') do
      if channel ~= reply then
        redis.call('PUBLISH', channel, message)
      end
    end
  end
end
