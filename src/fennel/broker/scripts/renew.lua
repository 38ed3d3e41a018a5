-- Renew the leases of a worker's in-flight entries (reset their idle time) and report the
-- entries it no longer owns, which it must not complete.
-- KEYS[1] queue stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3..] stream entry ids
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
