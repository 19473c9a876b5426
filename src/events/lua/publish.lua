-- Places and publishes events: numbers each, keeps it in its topics' streams and the bus-wide
-- log, and publishes it, all in one step, so every node sees events in the order they were
-- numbered. Several events of one write (an order and the pet it reserved) go in one call, in
-- the order given, as if published one after the other.
--
-- KEYS[1] the bus-wide sequence          KEYS[2] the epoch
-- KEYS[3] each topic's latest offset (hash)
-- KEYS[4] the last version published per entity (hash)
-- KEYS[5] the bus-wide log (stream)      KEYS[6..] each event's topics' streams, in the order
--                                        of their names below, event after event
-- ARGV[1] an epoch to use if there is none yet
-- ARGV[2] events kept per topic          ARGV[3] events kept in the log
-- ARGV[4] how long a topic's stream is kept after its last event (ms)
-- ARGV[5] the pub/sub channel
-- ARGV[6..] per event: the entity it reports ('' for none), its version, the serialized
--           notification without its opening brace, the number of topics of its audience,
--           then those topics
--
-- Answers one number per event: its sequence number, or 0 when a newer version of its entity
-- was published.
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
local answers = {}
local position = 6
local stream = 6
while position <= #ARGV do
  local entity = ARGV[position]
  local version = ARGV[position + 1]
  local body = ARGV[position + 2]
  local count = tonumber(ARGV[position + 3])
  local first_topic = position + 4
  position = first_topic + count
  local superseded = false
  if entity ~= '' then
    local last = tonumber(redis.call('HGET', KEYS[4], entity) or '0')
    if tonumber(version) <= last then
      superseded = true
    else
      redis.call('HSET', KEYS[4], entity, version)
    end
  end
  if superseded then
    answers[#answers + 1] = 0
  else
    local seq = redis.call('INCR', KEYS[1])
    local offsets = {}
    local positions = {}
    for i = first_topic, first_topic + count - 1 do
      local offset = redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
      offsets[#offsets + 1] = offset
      positions[#positions + 1] = '"' .. ARGV[i] .. '":' .. offset
    end
    local head = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",'
    if #positions > 0 then
      head = head .. '"positions":{' .. table.concat(positions, ',') .. '},'
    end
    local message = head .. body
    for i = 1, #offsets do
      local key = KEYS[stream + i - 1]
      redis.call('XADD', key, 'MAXLEN', '~', ARGV[2], offsets[i] .. '-0', 's', seq, 'm', message)
      redis.call('PEXPIRE', key, ARGV[4])
    end
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'm', message)
    redis.call('PUBLISH', ARGV[5], message)
    answers[#answers + 1] = seq
  end
  stream = stream + count
end
return answers
