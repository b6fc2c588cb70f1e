-- page.lua: one page of a lexically ordered index and the hashes it names, in one consistent read.
-- Used for agent lists (index as:agents) and session lists (as:sessions:<agent>[:on|:off]).
--
-- The hashes are addressed as ARGV[1] .. member because which ones are read depends on the index;
-- this is a single-node script (Redis primary + replicas, not Redis Cluster).
--
-- KEYS[1] the index (zset, score 0)
-- KEYS[2] optional owner hash that must exist (the agent, for a session list)
-- ARGV[1] hash key prefix, e.g. "as:session:agt_x:" or "as:agent:"
-- ARGV[2] exclusive start member ("" for the first page)
-- ARGV[3] page size
--
-- Returns {"not_found"} (owner missing)
--       | {"ok", total, next_member_or_"", {member, {field, value, ...}}, ...}

if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 then return {'not_found'} end

local limit = tonumber(ARGV[3])
local start = '-'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end

-- One extra member tells whether there is a next page.
local members = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, limit + 1)
local next_member = ''
if #members > limit then
  next_member = members[limit]
  members[limit + 1] = nil
end

local reply = {'ok', redis.call('ZCARD', KEYS[1]), next_member}
for _, member in ipairs(members) do
  table.insert(reply, {member, redis.call('HGETALL', ARGV[1] .. member)})
end
return reply
