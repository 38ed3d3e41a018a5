-- Take over entries whose lease expired (their worker died), with their delivery counts.
-- KEYS[1] queue stream, KEYS[2] lease clock hash (see renew.lua)
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle (ms), ARGV[4] count, ARGV[5] stall (ms),
-- ARGV[6] max deliveries, ARGV[7] '1' if this worker may take a suspect (it holds none)
-- Returns {{{id, envelope or false, deliveries}, ...}, suspects waiting}.
--
-- Takes nothing until one lease has passed since Redis service resumed after a stall, so a
-- pause or restart of Redis does not make every live worker's entries look abandoned.
--
-- Suspects: an idle pending entry delivered twice or more was in flight at two worker deaths,
-- so it may be what kills workers. Such an entry is only taken by a worker holding no other
-- suspect, one at a time, and nothing else is taken with it; that worker takes nothing new and
-- runs it once its current jobs are done: if it kills that worker too, only its own delivery
-- count grows, and the jobs that happened to share a worker with it never reach the DLQ for
-- it. Entries over max deliveries are taken normally: the worker dead-letters them unrun.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
if last > 0 and now - last > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[2], 'resumed', now)
end
redis.call('HSET', KEYS[2], 'last', now)
local resumed = tonumber(redis.call('HGET', KEYS[2], 'resumed') or '0')
if now - resumed < tonumber(ARGV[3]) then
  return {{}, 0}
end
local count = tonumber(ARGV[4])
local max_deliveries = tonumber(ARGV[6])
local idle = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', tonumber(ARGV[3]), '-', '+', 1000)
local take, suspect, waiting = {}, nil, 0
for _, p in ipairs(idle) do
  local n = tonumber(p[4])
  if n < 2 or n >= max_deliveries then
    if #take < count then take[#take + 1] = p[1] end
  else
    waiting = waiting + 1
    if suspect == nil then suspect = p[1] end
  end
end
if #take == 0 and suspect ~= nil and ARGV[7] == '1' and count > 0 then
  take = {suspect}
  waiting = waiting - 1
end
local out = {}
if #take > 0 then
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]),
    unpack(take))
  for _, e in ipairs(claimed) do
    if e and e[2] then
      local env = false
      for i = 1, #e[2], 2 do
        if e[2][i] == 'j' then env = e[2][i + 1] end
      end
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
      local n = 1
      if #p > 0 then n = p[1][4] end
      out[#out + 1] = {e[1], env, n}
    elseif e then
      redis.call('XACK', KEYS[1], ARGV[1], e[1])
    end
  end
end
return {out, waiting}
