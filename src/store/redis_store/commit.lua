-- Compare-and-set transaction (If compares Then writes), the one write path of the Redis store.
--
-- ARGV: the 1-based index in KEYS of the commit counter, the number of conditions, then the
-- conditions, then the writes. Each item is an opcode and the 1-based index of its key in KEYS,
-- followed by its own arguments. Every condition is checked before anything is written, so a
-- failed one leaves everything as it was.
--
-- Once the conditions hold, the commit takes its number with `INCR` of the counter: scripts run
-- one at a time, so the numbers follow the order the commits took effect in. The `version`
-- write stores that number in a field of a record.
--
-- Answers `{number, counts...}`: the commit's number (1 or more) when every condition held and
-- the writes were done, followed by the result of each `count` in the order given (a sorted
-- set's size once the writes are done: the inventory a step that moves a pet between statuses
-- reports, counted in the same step instead of another round trip); `{0}` when some record
-- changed since the caller read it (the caller reads again and retries).
--
-- Every key is declared in KEYS except the image keys `delmembers` removes: their names are the
-- members of the declared set they belong to, prefixed with an ARGV prefix.

local position = 1
local function arg()
  local value = ARGV[position]
  position = position + 1
  return value
end
local function key()
  return KEYS[tonumber(arg())]
end

local counter = key()
local conditions = tonumber(arg())
for _ = 1, conditions do
  local op = arg()
  local target = key()
  if op == 'absent' then
    if redis.call('EXISTS', target) ~= 0 then return {0} end
  elseif op == 'eq' then
    local expected = arg()
    if redis.call('GET', target) ~= expected then return {0} end
  elseif op == 'hfield' then
    local field = arg()
    local expected = arg()
    if redis.call('HGET', target, field) ~= expected then return {0} end
  elseif op == 'member' then
    local member = arg()
    local expected = arg()
    if tostring(redis.call('SISMEMBER', target, member)) ~= expected then return {0} end
  elseif op == 'card' then
    local expected = arg()
    if tostring(redis.call('SCARD', target)) ~= expected then return {0} end
  else
    return redis.error_reply('ERR unknown condition ' .. tostring(op))
  end
end

local version = redis.call('INCR', counter)
-- Written as decimal digits: Lua's own number-to-string conversion switches to an exponent
-- beyond 14 digits.
local version_text = string.format('%d', version)
local answer = {version}

while position <= #ARGV do
  local op = arg()
  local target = key()
  if op == 'set' then
    redis.call('SET', target, arg())
  elseif op == 'del' then
    redis.call('DEL', target)
  elseif op == 'hset' then
    local field = arg()
    local value = arg()
    redis.call('HSET', target, field, value)
  elseif op == 'version' then
    redis.call('HSET', target, arg(), version_text)
  elseif op == 'zadd' then
    local score = arg()
    local member = arg()
    redis.call('ZADD', target, score, member)
  elseif op == 'zrem' then
    redis.call('ZREM', target, arg())
  elseif op == 'sadd' then
    redis.call('SADD', target, arg())
  elseif op == 'srem' then
    redis.call('SREM', target, arg())
  elseif op == 'delmembers' then
    local prefix = arg()
    for _, member in ipairs(redis.call('SMEMBERS', target)) do
      redis.call('DEL', prefix .. member)
    end
    redis.call('DEL', target)
  elseif op == 'count' then
    answer[#answer + 1] = redis.call('ZCARD', target)
  else
    return redis.error_reply('ERR unknown write ' .. tostring(op))
  end
end
return answer
