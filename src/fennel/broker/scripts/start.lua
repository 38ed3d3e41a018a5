-- Mark jobs as executing. Never resurrects a finished or unknown job: a completion that
-- overtook this call (another connection) keeps its terminal status.
-- KEYS job hashes
for _, key in ipairs(KEYS) do
  local s = redis.call('HGET', key, 'status')
  if s == 'SENT' or s == 'RETRY' then
    redis.call('HSET', key, 'status', 'EXECUTING')
  end
end
return #KEYS
