-- Take over entries whose lease expired (their worker died), with their delivery counts.
-- KEYS[1] queue stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle (ms), ARGV[4] count
-- Returns {{id, envelope or false, deliveries}, ...}. Entries deleted meanwhile are skipped.
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
