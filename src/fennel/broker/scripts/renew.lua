-- Renew the leases of a worker's in-flight entries (reset their idle time) and report the
-- entries another consumer owns now, which this worker must not complete.
-- KEYS[1] queue stream, KEYS[2] lease clock hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] stall (ms), ARGV[4..] stream entry ids
--
-- The lease clock: every renewal and reclaim stamps Redis TIME into KEYS[2]. A gap longer
-- than the stall threshold means no worker could talk to Redis for a while (it was paused,
-- slow, restarting, or every worker was down); 'resumed' then records when service came
-- back, and reclaim.lua takes nothing until a full lease has passed since, so that live
-- workers whose renewals were stalled by the fault get to renew before anyone steals.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
if last > 0 and now - last > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[2], 'resumed', now)
end
redis.call('HSET', KEYS[2], 'last', now)
local lost = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 then
    if p[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      lost[#lost + 1] = ARGV[i]
    end
  end
  -- Not pending at all: acknowledged meanwhile (usually by our own completion racing this
  -- call). Not a lost lease; if someone else completed it, our fenced completion says so.
end
return lost
