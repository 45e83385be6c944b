-- Reads one batch after the archive watermark, atomically with the stream's bookkeeping.
-- KEYS[1] stream, KEYS[2] chain hash (fence)
-- ARGV[1] exclusive start id, ARGV[2] inclusive end id or '+', ARGV[3] count
-- Returns {exists, fence_wm, length, entries_added, first_id, last_generated_id,
--          max_deleted_id, recorded_first_id, last_entry_id, entries}
local fence = redis.call('HGET', KEYS[2], 'wm')
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  return {0, fence}
end
if t ~= 'stream' then
  return redis.error_reply('WRONGTYPE key `' .. KEYS[1] .. '` is a ' .. t .. ', not a stream')
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local f = {}
for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
local first = false
if f['first-entry'] then first = f['first-entry'][1] end
local last = false
if f['last-entry'] then last = f['last-entry'][1] end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'COUNT', ARGV[3])
return {1, fence, f['length'], f['entries-added'], first, f['last-generated-id'],
        f['max-deleted-entry-id'], f['recorded-first-entry-id'], last, entries}
