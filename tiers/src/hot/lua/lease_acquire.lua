-- Takes a lease, or renews it for its owner.
-- KEYS[1] lease key; ARGV[1] owner, ARGV[2] time to live in ms
-- Returns 1 when the owner holds it now, 0 when another owner does.
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
