-- Take back this consumer's own orphans: entries Redis delivered to it whose reply never
-- arrived (the connection dropped during a blocking read), so it does not know it has them.
-- KEYS[1] queue stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle (ms), ARGV[4..] entry ids
-- Returns {{id, envelope or false, deliveries}, ...}. XCLAIM with a min idle time skips any
-- entry renewed or claimed by another worker meanwhile.
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {} end
local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], unpack(ids))
local out = {}
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
  end
end
return out
