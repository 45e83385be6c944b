-- The last step of a restore, once its entries are written: recreates the consumer groups of a
-- snapshot with their consumers and pending entries, and sets the stream's counters. Runs once
-- per job and target: a marker in the job's cursor hash, set in the same step, makes a second
-- call (after a crash or a retry) a no-op.
-- KEYS[1] target stream, KEYS[2] cursor hash (same slot as the target)
-- ARGV[1] job id, ARGV[2] last generated id, ARGV[3] entries added, ARGV[4] max deleted id,
-- ARGV[5] number of groups, then per group:
--   name, last delivered id, entries read ('' when unknown), number of consumers, their names,
--   number of pending entries, then per pending entry: id, consumer, idle ms, deliveries
-- Returns {0} when already done, else {1, groups created, pending entries restored,
-- pending entries whose entry is not in the stream}.
local marker = ARGV[1] .. ':groups'
if redis.call('HEXISTS', KEYS[2], marker) == 1 then
  return {0}
end
local key = KEYS[1]
-- Refuse before writing anything what XSETID would refuse after the groups were made (a script
-- is not rolled back): an entry above the last generated id.
if ARGV[2] ~= '0-0' and #redis.call('XREVRANGE', key, '+', '(' .. ARGV[2], 'COUNT', 1) > 0 then
  return redis.error_reply('ERR `' .. key .. '` holds entries above the restored last id ' .. ARGV[2])
end
local i = 6
local groups, restored, missing = 0, 0, 0
for _ = 1, tonumber(ARGV[5]) do
  local name, delivered, read = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local created
  if read == '' then
    created = redis.pcall('XGROUP', 'CREATE', key, name, delivered, 'MKSTREAM')
  else
    created = redis.pcall('XGROUP', 'CREATE', key, name, delivered, 'MKSTREAM', 'ENTRIESREAD', read)
  end
  -- Only this job can have made a group here (the target had none when it was planned); a
  -- group left by a step that failed halfway is set again below.
  if type(created) == 'table' and created['err'] then
    if string.sub(created['err'], 1, 9) ~= 'BUSYGROUP' then
      return created
    end
    if read == '' then
      redis.call('XGROUP', 'SETID', key, name, delivered)
    else
      redis.call('XGROUP', 'SETID', key, name, delivered, 'ENTRIESREAD', read)
    end
  end
  groups = groups + 1
  local consumers = tonumber(ARGV[i + 3])
  i = i + 4
  for c = 0, consumers - 1 do
    redis.call('XGROUP', 'CREATECONSUMER', key, name, ARGV[i + c])
  end
  i = i + consumers
  local pending = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, pending do
    local claimed = redis.call('XCLAIM', key, name, ARGV[i + 1], 0, ARGV[i],
      'IDLE', ARGV[i + 2], 'RETRYCOUNT', ARGV[i + 3], 'FORCE', 'JUSTID')
    if #claimed == 1 then restored = restored + 1 else missing = missing + 1 end
    i = i + 4
  end
end
if ARGV[2] ~= '0-0' then
  if redis.call('EXISTS', key) == 0 then
    -- No entry and no group: XSETID needs a stream; an empty one holds the counters.
    redis.call('XADD', key, ARGV[2], 'x', 'x')
    redis.call('XDEL', key, ARGV[2])
  end
  -- Never below what the stream holds (an archive whose offsets an XDEL hid).
  local added = math.max(tonumber(ARGV[3]), redis.call('XLEN', key))
  redis.call('XSETID', key, ARGV[2], 'ENTRIESADDED', added, 'MAXDELETEDID', ARGV[4])
end
redis.call('HSET', KEYS[2], marker, '1')
return {1, groups, restored, missing}
