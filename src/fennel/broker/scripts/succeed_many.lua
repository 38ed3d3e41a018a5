-- Record the success of many jobs (no callbacks) in one call: the worker's hot path.
-- Per job exactly what complete.lua does for SUCCESS, with the same fencing and answers
-- (1 recorded, 0 another consumer owns the entry, -1 this delivery recorded it already).
-- KEYS[1] queue stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] results ttl (s), ARGV[4] job key prefix,
-- then per job: entry id, job id, result JSON, reply channel or ''
-- The job keys share the queue's hash tag, so they live in its Cluster slot.
-- True when the consumer group that delivered ENTRY is gone, so that nobody else can hold
-- it: Redis lost its data (the job's record went with it) or the group was destroyed and
-- recreated (the new group's last-delivered id is older than ENTRY: it never handed ENTRY
-- out). The job's record is then all that is left, so the outcome is recorded there without
-- an acknowledgement (there is nothing to acknowledge), and the entry, if the stream still
-- has it, is deleted so the new group never runs it again. Otherwise an entry pending nowhere
-- was finished by whoever owned it after us (its record names this entry): fenced out.
local function group_lost(stream, group, entry, job)
  local by = redis.call('HGET', job, 'by')
  if by and string.sub(by, -#entry - 1) == '/' .. entry then
    return false
  end
  if redis.call('EXISTS', job) == 0 then
    return true
  end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == group then
      local lm, ls = string.match(f['last-delivered-id'], '^(%d+)-(%d+)$')
      local em, es = string.match(entry, '^(%d+)-(%d+)$')
      if not em then return false end
      lm, ls, em, es = tonumber(lm), tonumber(ls), tonumber(em), tonumber(es)
      return em > lm or (em == lm and es > ls)
    end
  end
  return false
end
local out, acked = {}, {}
local by = ARGV[2] .. '/'
for i = 5, #ARGV, 4 do
  local entry, id, result, reply = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = ARGV[4] .. id
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
  if #p == 0 and redis.call('HGET', key, 'by') == by .. entry then
    out[#out + 1] = -1
  elseif #p == 0 and not group_lost(KEYS[1], ARGV[1], entry, key) then
    out[#out + 1] = 0
  elseif #p > 0 and p[1][2] ~= ARGV[2] then
    out[#out + 1] = 0
  else
    -- HSET first: under maxmemory the first one is refused and nothing at all is written.
    redis.call('HSET', key, 'status', 'SUCCESS', 'result', result, 'by', by .. entry)
    redis.call('HDEL', key, 'error', 'envelope')
    redis.call('EXPIRE', key, ARGV[3])
    if reply ~= '' then
      redis.call('PUBLISH', reply, id .. '\nSUCCESS\n' .. result)
    end
    acked[#acked + 1] = entry
    out[#out + 1] = 1
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
return out
