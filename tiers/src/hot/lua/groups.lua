-- Every consumer group of a stream with its consumers and oldest pending entries, and the
-- stream's counters, in one atomic step (a snapshot for a faithful restore).
-- KEYS[1] stream; ARGV[1] the most pending entries listed per group
-- Returns {0} when the stream does not exist, else
--   {1, time_ms, length, entries_added, first_id, last_generated_id, max_deleted_id,
--    recorded_first_id, last_entry_id, groups}
-- where groups is a list of {name, last_delivered_id, entries_read, pending_count,
--   {consumer, pending, idle_ms, ...}, {{id, consumer, idle_ms, deliveries}, ...}}.
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  return {0}
end
if t ~= 'stream' then
  return redis.error_reply('WRONGTYPE key `' .. KEYS[1] .. '` is a ' .. t .. ', not a stream')
end
local limit = tonumber(ARGV[1])
local function fields(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end
local now = redis.call('TIME')
local time_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local s = fields(redis.call('XINFO', 'STREAM', KEYS[1]))
local first = false
if s['first-entry'] then first = s['first-entry'][1] end
local last = false
if s['last-entry'] then last = s['last-entry'][1] end
local groups = {}
for _, flat in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = fields(flat)
  local consumers = {}
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], g['name'])) do
    local cf = fields(c)
    table.insert(consumers, cf['name'])
    table.insert(consumers, cf['pending'])
    table.insert(consumers, cf['idle'])
  end
  local pending = {}
  if limit > 0 and g['pending'] > 0 then
    pending = redis.call('XPENDING', KEYS[1], g['name'], '-', '+', limit)
  end
  table.insert(groups, {g['name'], g['last-delivered-id'], g['entries-read'], g['pending'],
                        consumers, pending})
end
return {1, time_ms, s['length'], s['entries-added'], first, s['last-generated-id'],
        s['max-deleted-entry-id'], s['recorded-first-entry-id'], last, groups}
