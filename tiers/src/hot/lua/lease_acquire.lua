-- Takes a lease, or renews it for its owner.
-- KEYS[1] lease key; ARGV[1] owner, ARGV[2] time to live in ms
-- Returns 1 when the owner holds it now; when another owner does, minus the milliseconds its
-- lease has left (at most -1), so that the asker can come back right when it runs out.
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then left = 1 end
return -left
