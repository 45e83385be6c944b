-- What a replay into a target weighs on Redis now: memory, and the target's backlog.
-- KEYS[1] target stream
-- Returns {used_memory, maxmemory, total_system_memory, length, groups, backlog}: backlog is
-- the most entries any group has not been delivered (its lag; the stream's length when Redis
-- cannot count it), or the length when the stream has no group.
local m = redis.call('INFO', 'memory')
local used = tonumber(string.match(m, 'used_memory:(%d+)')) or 0
local max = tonumber(string.match(m, 'maxmemory:(%d+)')) or 0
local total = tonumber(string.match(m, 'total_system_memory:(%d+)')) or 0
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'stream' then
  return {used, max, total, 0, 0, 0}
end
local length = redis.call('XLEN', KEYS[1])
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local backlog = 0
if #groups == 0 then
  backlog = length
end
for _, flat in ipairs(groups) do
  local lag = false
  for i = 1, #flat, 2 do
    if flat[i] == 'lag' then lag = flat[i + 1] end
  end
  if not lag then lag = length end
  if lag > backlog then backlog = lag end
end
return {used, max, total, length, #groups, backlog}
