-- Several reads in one round trip, all from the same instant (a script runs alone).
--
-- ARGV: reads, each an opcode and the 1-based index of its key in KEYS, followed by its own
-- arguments. Returns one result per read, in order; a missing value is a nil.

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
  else
    return redis.error_reply('ERR unknown read ' .. tostring(op))
  end
  results[#results + 1] = result
end
return results
