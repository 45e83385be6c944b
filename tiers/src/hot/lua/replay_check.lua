-- Step 1 of a replay batch, after WATCH: the job's cursor, the entries it wrote, the target's
-- type and (with original ids) its last generated id.
-- KEYS[1] target stream, KEYS[2] cursor hash (same slot as the target)
-- ARGV[1] job id, ARGV[2] 'original' | 'new'
-- Returns {cursor or '', count, type, last_generated_id or ''}
local cur = redis.call('HGET', KEYS[2], ARGV[1]) or ''
local n = redis.call('HGET', KEYS[2], ARGV[1] .. ':n') or '0'
local t = redis.call('TYPE', KEYS[1])['ok']
local top = ''
if t == 'stream' and ARGV[2] == 'original' then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then top = info[i + 1] end
  end
end
return {cur, n, t, top}
