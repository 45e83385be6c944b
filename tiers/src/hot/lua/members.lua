-- Keeps the set of live archiver daemons: drops members whose time ran out, then adds or
-- refreshes one (or removes it, when it leaves). Times are the server's, so that processes
-- with different clocks agree.
-- KEYS[1] the members' sorted set (score: when the member expires, ms)
-- ARGV[1] member, ARGV[2] time to live in ms ('0': the member leaves)
-- Returns the number of live members.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[2] == '0' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return redis.call('ZCARD', KEYS[1])
