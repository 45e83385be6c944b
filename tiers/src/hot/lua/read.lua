-- The stream's bookkeeping and the chain fence, read in the same MULTI/EXEC as the XRANGE that
-- follows it (the entries are not copied through Lua: Redis returns them natively).
-- KEYS[1] stream, KEYS[2] chain hash (fence)
-- Returns {exists, fence_wm, length, entries_added, first_id, last_generated_id,
--          max_deleted_id, recorded_first_id, last_entry_id}
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
return {1, fence, f['length'], f['entries-added'], first, f['last-generated-id'],
        f['max-deleted-entry-id'], f['recorded-first-entry-id'], last}
