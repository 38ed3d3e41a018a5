-- Included by the outcome scripts (see _load_scripts in broker/redis.py).
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
