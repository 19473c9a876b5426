-- Several reads in one round trip, all from the same instant (a script runs alone).
--
-- ARGV: reads, each an opcode and the 1-based index of its key in KEYS, followed by its own
-- arguments. Returns one result per read, in order; a missing value is a nil.
--
-- The one write, `nextid`, only moves a sequence counter: running the script twice (a retried
-- read) wastes an id, nothing else. The record keys it checks are built from the prefix its
-- caller passes, in the hash slot of the counter (one hash-tag prefix for every key).

local position = 1
local function arg()
  local value = ARGV[position]
  position = position + 1
  return value
end

local results = {}
while position <= #ARGV do
  local op = arg()
  local target = KEYS[tonumber(arg())]
  local result
  if op == 'hmget' then
    local count = tonumber(arg())
    local fields = {}
    for index = 1, count do
      fields[index] = arg()
    end
    result = redis.call('HMGET', target, unpack(fields))
  elseif op == 'exists' then
    result = redis.call('EXISTS', target)
  elseif op == 'member' then
    result = redis.call('SISMEMBER', target, arg())
  elseif op == 'card' then
    result = redis.call('SCARD', target)
  elseif op == 'zcard' then
    result = redis.call('ZCARD', target)
  elseif op == 'nextid' then
    -- Draws the next id of the sequence at `target` that no record uses (the key `prefix ..
    -- id` is absent): ids chosen by clients do not move the counter, so they are skipped here.
    -- Each id drawn is used at most once, whether or not the step that drew it commits.
    local prefix = arg()
    local id = redis.call('INCR', target)
    while redis.call('EXISTS', prefix .. string.format('%d', id)) == 1 do
      id = redis.call('INCR', target)
    end
    result = id
  else
    return redis.error_reply('ERR unknown read ' .. tostring(op))
  end
  results[#results + 1] = result
end
return results
