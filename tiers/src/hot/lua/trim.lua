-- Trims archived entries, honouring the retention window and consumer groups, in one step.
-- KEYS[1] stream, KEYS[2] chain hash (fence)
-- ARGV[1] archived watermark W: the last entry id durably in the store (never trims above it)
-- ARGV[2] archived offset C: entries-added offset of W (0 when unknown)
-- ARGV[3] time bound: keep entries with id >= this id ('' for none)
-- ARGV[4] retain_entries: keep at least the newest N entries
-- ARGV[5] retain_max_entries: hard cap past stalled groups (0 for none)
-- ARGV[6] respect consumer groups (1/0)
-- ARGV[7] key of the archive's last object, kept as the chain hint if it sorts after the
--         current one ('' for none): a listing shortcut, recorded in the same round trip
-- Returns {status, trimmed, bound, length_after, behind_groups...}
-- status: 'ok', 'regressed' (last id below W), 'recreated' (entries-added below C), 'missing'
local function split(id)
  local d = string.find(id, '-', 1, true)
  return string.sub(id, 1, d - 1), string.sub(id, d + 1)
end
local function cmpnum(a, b)
  if #a ~= #b then return (#a < #b) and -1 or 1 end
  if a == b then return 0 end
  return (a < b) and -1 or 1
end
local function cmp(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  local c = cmpnum(am, bm)
  if c ~= 0 then return c end
  return cmpnum(as, bs)
end
local function incr(n)
  local i = #n
  local out = ''
  while i > 0 do
    local d = string.byte(n, i) - 48
    if d < 9 then
      return string.sub(n, 1, i - 1) .. string.char(d + 49) .. out
    end
    out = '0' .. out
    i = i - 1
  end
  return '1' .. out
end
local function succ(id)
  local m, s = split(id)
  if s == '18446744073709551615' then return incr(m) .. '-0' end
  return m .. '-' .. incr(s)
end
local function minid(a, b)
  if a == false then return b end
  if b == false then return a end
  if cmp(a, b) <= 0 then return a end
  return b
end
-- Id of the k-th oldest entry (1-based) if it lies below `limit`, else false; walks at most k entries.
local function kth_below(k, limit)
  local start = '-'
  local seen = 0
  while true do
    local batch = redis.call('XRANGE', KEYS[1], start, '(' .. limit, 'COUNT', 1000)
    if #batch == 0 then return false end
    if seen + #batch >= k then return batch[k - seen][1] end
    seen = seen + #batch
    start = '(' .. batch[#batch][1]
  end
end

local w = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', 0, false, 0} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local f = {}
for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
if cmp(f['last-generated-id'], w) < 0 then return {'regressed', 0, false, f['length']} end
if tonumber(ARGV[2]) > 0 and tonumber(f['entries-added']) < tonumber(ARGV[2]) then
  return {'recreated', 0, false, f['length']}
end
-- The fence: archivers that read after an older watermark see this and resync first.
local fence = redis.call('HGET', KEYS[2], 'wm')
if not fence or cmp(w, fence) > 0 then redis.call('HSET', KEYS[2], 'wm', w) end
if ARGV[7] ~= '' then
  local hint = redis.call('HGET', KEYS[2], 'hint')
  if not hint or ARGV[7] > hint then redis.call('HSET', KEYS[2], 'hint', ARGV[7]) end
end

local length = tonumber(f['length'])
local bound = succ(w)
if ARGV[3] ~= '' then bound = minid(bound, ARGV[3]) end
local behind = {}
if ARGV[6] == '1' then
  local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
  local gbound = false
  local gb = {}
  for _, g in ipairs(groups) do
    local gf = {}
    for i = 1, #g, 2 do gf[g[i]] = g[i + 1] end
    local b = succ(gf['last-delivered-id'])
    local p = redis.call('XPENDING', KEYS[1], gf['name'])
    if tonumber(p[1]) > 0 then b = minid(b, p[2]) end
    gb[#gb + 1] = {gf['name'], b}
    gbound = minid(gbound, b)
  end
  if gbound ~= false and cmp(gbound, bound) < 0 then
    local cap = tonumber(ARGV[5])
    if cap > 0 and length > cap then
      -- Hard cap: keep at most `cap` entries even past a stalled group (archived ones only).
      local capid = kth_below(length - cap + 1, bound)
      if capid == false then capid = bound end
      if cmp(capid, gbound) > 0 then
        for _, x in ipairs(gb) do
          if cmp(x[2], capid) < 0 then behind[#behind + 1] = x[1] end
        end
        gbound = capid
      end
    end
    bound = minid(bound, gbound)
  end
end
local keep = tonumber(ARGV[4])
if length <= keep then return {'ok', 0, bound, length, unpack(behind)} end
-- Keep the newest `keep` entries: never remove more than length - keep.
local k = kth_below(length - keep + 1, bound)
if k ~= false then bound = k end
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', '=', bound)
return {'ok', trimmed, bound, length - trimmed, unpack(behind)}
