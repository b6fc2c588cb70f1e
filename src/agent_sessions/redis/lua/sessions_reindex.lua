-- prelude: _index
-- sessions_reindex.lua: one bounded step of `agent-sessions reindex`: put up to `batch` of an agent's
-- sessions, in key order after `after`, into the sort, dimension and expiry indexes (see _index.lua),
-- as the write scripts would have. Idempotent: a session already in an index stays where it is.
--
-- Returns the last session key of the step, or "" when the agent's sessions are done.
--
-- KEYS: all_sessions, created_index, updated_index, expiry_index
-- ARGV: session_prefix, dimension_prefix, dimensions, max_bytes, agent, after, batch

local all_index = KEYS[1]
local index = index_of(ARGV[2], KEYS[2], KEYS[3], KEYS[4])
local dims, max_bytes = {}, tonumber(ARGV[4])   -- ARGV[3]: the dimensions, comma-separated
for dim in string.gmatch(ARGV[3], '[^,]+') do dims[#dims + 1] = dim end
local session_prefix, agent, after, batch = ARGV[1], ARGV[5], ARGV[6], tonumber(ARGV[7])

local start = after == '' and '-' or ('(' .. after)
local members = redis.call('ZRANGEBYLEX', all_index, start, '+', 'LIMIT', 0, batch)
for _, member in ipairs(members) do
  local f = redis.call('HMGET', session_prefix .. member, 'created_at', 'updated_at', 'metadata', 'tti_minutes')
  if f[1] then
    place(index, agent, member, f[1], f[2], f[4])
    local ix = ix_of(f[3], dims, max_bytes)
    reindex(index, member, nil, ix)   -- the caller dropped the agent's dimension indexes first
    if ix == '' then
      redis.call('HDEL', session_prefix .. member, 'ix')
    else
      redis.call('HSET', session_prefix .. member, 'ix', ix)
    end
  end
end
if #members < batch then return '' end
return members[#members]
