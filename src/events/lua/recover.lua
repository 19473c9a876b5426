-- What a session resuming topics needs, in one round trip: the epoch (made if there is none
-- yet), and per topic its latest offset and the kept events the answer depends on.
--
-- KEYS[1] the epoch   KEYS[2] each topic's latest offset (hash)   KEYS[3..] each topic's stream
-- ARGV[1] an epoch to use if there is none yet
-- ARGV[2..] per topic, in the order of KEYS[3..]: its name, then the client's offset or -1
--
-- Answers {epoch, {latest, entries}, …}: for a topic resumed from an offset, every kept event
-- after it; otherwise its newest kept events (to tell which are beyond the session's horizon).
-- Entries are flat: sequence number, message, sequence number, message, …
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
local answer = {epoch}
for i = 3, #KEYS do
  local name = ARGV[2 * (i - 2)]
  local since = tonumber(ARGV[2 * (i - 2) + 1])
  local latest = tonumber(redis.call('HGET', KEYS[2], name) or '0')
  local entries
  if since >= 0 and since < latest then
    entries = redis.call('XRANGE', KEYS[i], (since + 1) .. '-0', '+')
  else
    entries = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 64)
  end
  local flat = {}
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    local seq, message
    for f = 1, #fields, 2 do
      if fields[f] == 's' then seq = fields[f + 1] elseif fields[f] == 'm' then message = fields[f + 1] end
    end
    flat[#flat + 1] = seq
    flat[#flat + 1] = message
  end
  answer[#answer + 1] = {latest, flat}
end
return answer
