-- Last command of a replay batch's MULTI/EXEC, after its XADDs: moves the job's cursor, unless
-- the XADDs failed because the target is not a stream.
-- KEYS[1] target stream, KEYS[2] cursor hash (same slot as the target)
-- ARGV[1] job id, ARGV[2] new cursor (the batch's last source id), ARGV[3] entries in the batch
-- Returns {1, total written by the job} or {0, the target's type}
local t = redis.call('TYPE', KEYS[1])['ok']
-- A batch that only moves the cursor (entries left out by a filter) may find no stream yet.
if t ~= 'stream' and not (t == 'none' and ARGV[3] == '0') then return {0, t} end
local total = redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':n', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {1, tostring(total)}
