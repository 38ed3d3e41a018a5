-- Take over entries whose lease expired (their worker died), with their delivery counts.
-- KEYS[1] queue stream, KEYS[2] lease clock hash (see renew.lua)
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle (ms), ARGV[4] count, ARGV[5] stall (ms)
-- Returns {{id, envelope or false, deliveries}, ...}. Entries deleted meanwhile are skipped.
-- Takes nothing until one lease has passed since Redis service resumed after a stall, so a
-- pause or restart of Redis does not make every live worker's entries look abandoned.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
if last > 0 and now - last > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[2], 'resumed', now)
end
redis.call('HSET', KEYS[2], 'last', now)
local resumed = tonumber(redis.call('HGET', KEYS[2], 'resumed') or '0')
if now - resumed < tonumber(ARGV[3]) then
  return {}
end
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
  'COUNT', tonumber(ARGV[4]))
local out = {}
for _, e in ipairs(r[2]) do
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
return out
