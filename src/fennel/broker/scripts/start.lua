-- Mark jobs as executing. Never resurrects a finished or unknown job: a completion that
-- overtook this call (another connection) keeps its terminal status.
-- KEYS[1] queue stream, KEYS[2..] job hashes
-- ARGV[1] group, ARGV[2] consumer, ARGV[3..] the stream entry id of each job, in KEYS order
-- Fenced like the outcome scripts: only the consumer that still owns a job's entry may mark
-- it, so a worker that lost its lease cannot turn a job that waits for its retry (or that
-- another worker runs) back to EXECUTING.
if #ARGV < 2 then
  return 0
end
local marked = 0
for i = 2, #KEYS do
  local entry = ARGV[i + 1]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    local s = redis.call('HGET', KEYS[i], 'status')
    if s == 'SENT' or s == 'RETRY' then
      redis.call('HSET', KEYS[i], 'status', 'EXECUTING')
      marked = marked + 1
    end
  end
end
return marked
