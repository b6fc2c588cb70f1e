-- page.lua: one page of a lexically ordered index and the hashes it names, in one consistent read.
-- Used for agent lists (index as:agents); session lists have their own (sessions_find.lua).
--
-- The hashes are addressed as hash_prefix .. member because which ones are read depends on the
-- index; this is a single-node script (Redis primary + replicas, not Redis Cluster).
--
-- Returns {"agent_not_found"} (owner missing)
--       | {"ok", total, next_member_or_"", {member, {field, value, ...}}, ...}

local index = KEYS[1]
local owner = KEYS[2]             -- optional: a hash that must exist (the agent, for a session list)
local hash_prefix = ARGV[1]       -- e.g. "as:session:agt_x:" or "as:agent:"
local after = ARGV[2]             -- exclusive start member ("" for the first page)
local limit = tonumber(ARGV[3])   -- page size

if owner and redis.call('EXISTS', owner) == 0 then return {'agent_not_found'} end

local start = '-'
if after ~= '' then start = '(' .. after end

-- One extra member tells whether there is a next page.
local members = redis.call('ZRANGEBYLEX', index, start, '+', 'LIMIT', 0, limit + 1)
local next_member = ''
if #members > limit then
  next_member = members[limit]
  members[limit + 1] = nil
end

local reply = {'ok', redis.call('ZCARD', index), next_member}
for _, member in ipairs(members) do
  table.insert(reply, {member, redis.call('HGETALL', hash_prefix .. member)})
end
return reply
