-- Appends one replay batch to a target stream and moves the job's cursor, atomically.
-- KEYS[1] target stream, KEYS[2] cursor hash (same slot as the target)
-- ARGV[1] job id, ARGV[2] expected cursor ('' when the job has written nothing),
-- ARGV[3] new cursor (last source id of the batch), ARGV[4] 'new' | 'original',
-- ARGV[5] origin field name ('' for none), ARGV[6] origin value prefix,
-- ARGV[7] number of entries, then per entry: id, number of fields, name, value, ...
-- Returns {1, cursor, count} on success, {0, cursor, count} when the cursor moved elsewhere
-- (another runner; nothing written), {2, last_generated_id} when original ids would not
-- ascend (nothing written).
-- Every check happens before the first write: a script is not rolled back on error.
local cur = redis.call('HGET', KEYS[2], ARGV[1]) or ''
local count = redis.call('HGET', KEYS[2], ARGV[1] .. ':n') or '0'
if cur ~= ARGV[2] then
  return {0, cur, count}
end
local n = tonumber(ARGV[7])
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return string.sub(id, 1, dash - 1), string.sub(id, dash + 1)
end
-- Numeric comparison of decimal strings without leading zeros (ids exceed Lua's doubles).
local function num_lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function id_le(a, b)
  local ams, aseq = split(a)
  local bms, bseq = split(b)
  if ams ~= bms then return num_lt(ams, bms) end
  return not num_lt(bseq, aseq)
end
if ARGV[4] == 'original' and n > 0 then
  local t = redis.call('TYPE', KEYS[1])['ok']
  if t == 'stream' then
    local info = redis.call('XINFO', 'STREAM', KEYS[1])
    local top = '0-0'
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then top = info[i + 1] end
    end
    if id_le(ARGV[8], top) then
      return {2, top}
    end
  end
end
local i = 8
for _ = 1, n do
  local id = ARGV[i]
  local nf = tonumber(ARGV[i + 1])
  i = i + 2
  local args = {}
  for k = 1, nf * 2 do
    args[k] = ARGV[i + k - 1]
  end
  i = i + nf * 2
  if ARGV[5] ~= '' then
    args[#args + 1] = ARGV[5]
    args[#args + 1] = ARGV[6] .. id
  end
  if ARGV[4] == 'original' then
    redis.call('XADD', KEYS[1], id, unpack(args))
  else
    redis.call('XADD', KEYS[1], '*', unpack(args))
  end
end
local total = redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':n', n)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {1, ARGV[3], tostring(total)}
