-- Places and publishes one event: numbers it, keeps it in its topics' streams and the bus-wide
-- log, and publishes it, all in one step, so every node sees events in the order they were
-- numbered.
--
-- KEYS[1] the bus-wide sequence          KEYS[2] the epoch
-- KEYS[3] each topic's latest offset (hash)
-- KEYS[4] the last version published per entity (hash)
-- KEYS[5] the bus-wide log (stream)      KEYS[6..] each topic's stream, in the order of ARGV[9..]
-- ARGV[1] an epoch to use if there is none yet
-- ARGV[2] the entity the event reports ('' for none)   ARGV[3] its version
-- ARGV[4] events kept per topic          ARGV[5] events kept in the log
-- ARGV[6] how long a topic's stream is kept after its last event (ms)
-- ARGV[7] the pub/sub channel
-- ARGV[8] the serialized notification without its opening brace
-- ARGV[9..] the topics of its audience
--
-- Answers the event's sequence number, or 0 when a newer version of its entity was published.
if ARGV[2] ~= '' then
  local last = tonumber(redis.call('HGET', KEYS[4], ARGV[2]) or '0')
  if tonumber(ARGV[3]) <= last then
    return 0
  end
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
end
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
local seq = redis.call('INCR', KEYS[1])
local offsets = {}
local positions = {}
for i = 9, #ARGV do
  local offset = redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
  offsets[#offsets + 1] = offset
  positions[#positions + 1] = '"' .. ARGV[i] .. '":' .. offset
end
local head = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",'
if #positions > 0 then
  head = head .. '"positions":{' .. table.concat(positions, ',') .. '},'
end
local message = head .. ARGV[8]
for i = 1, #offsets do
  local key = KEYS[5 + i]
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[4], offsets[i] .. '-0', 's', seq, 'm', message)
  redis.call('PEXPIRE', key, ARGV[6])
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'm', message)
redis.call('PUBLISH', ARGV[7], message)
return seq
