-- The pets named by the union of some index sorted sets, in one round trip.
--
-- KEYS: the index sets (`pets:status:{status}` or `pets:tag:{name}`). ARGV[1]: the prefix of pet
-- keys (`{prefix}:pet:`). The pet keys are built here from the ids the indexes hold, so they are
-- not declared in KEYS (a single Redis, or a cluster with every key under one hash tag).
--
-- Returns id, JSON, version, id, JSON, version, ... ordered by id (the score), each pet once; a
-- JSON is nil when an index names a pet that does not exist, which the caller reports as corrupt
-- data.

-- A pet under several of the tags would get the sum of its scores; MIN keeps its id.
local union = { #KEYS }
for index = 1, #KEYS do
  union[#union + 1] = KEYS[index]
end
union[#union + 1] = 'AGGREGATE'
union[#union + 1] = 'MIN'
local ids = redis.call('ZUNION', unpack(union))
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HMGET', ARGV[1] .. id, 'json', 'version')
  out[#out + 1] = id
  out[#out + 1] = fields[1]
  out[#out + 1] = fields[2]
end
return out
