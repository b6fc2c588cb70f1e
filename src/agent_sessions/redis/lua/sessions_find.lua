-- prelude: _clock _index
-- sessions_find.lua: one page (or one count) of an agent's sessions, optionally filtered by
-- metadata_filter's program (see agent_sessions/filters.py) and by enabled, in key, created_at or
-- updated_at order; one consistent read, examining at most `budget` sessions.
--
-- Candidates: KEYS[2] (the agent's key index, or a sort index), or, in key order, the smallest of
-- the groups of dimension indexes KEYS[5..] (a group: the indexes of one `d = 'v'` or `d IN (...)`
-- condition the filter requires; their union holds every session that can match). An index is used
-- only once it is complete (KEYS[3], hash as:indexes:{t}: "dim:<dimension>" and "sort" set by
-- `agent-sessions reindex`, or by agent_create.lua on an empty store); a time order before that is
-- {"index_not_ready"}, a dimension's condition is evaluated by scanning instead.
--
-- When the candidates number at most `budget`, all are examined from the first: the count of
-- matches is exact (`total`), and the page is the matches after the cursor (the walk goes on past a
-- full page to count). Otherwise examination starts after the cursor and stops after `budget`
-- sessions; `total` is then -1 (unknown) unless the filter is exactly the index condition (ARGV[10] =
-- "1"), whose count is the indexes' size.
-- Sessions past their time-to-idle are never matches, and never counted: they are gone at their
-- expires_at, before the workers' sweep removes them. A count taken from an index's size subtracts
-- the candidates among the partition's expired sessions (KEYS[4], as:expiry:{t}); when more than
-- `budget` sessions of the partition wait for the sweep, such a count is -1 (unknown) instead.
--
-- Returns {"agent_not_found"} | {"index_not_ready"}
--       | {"ok", total, next_score, next_member, matched, {member, {field, value, ...}}, ...}
-- next_member "" when nothing follows; matched: matches after the cursor among the sessions examined.
--
-- KEYS: agent, base, ready, expiry, index_keys...
-- ARGV: session_prefix, order, after_score, after_member, limit, budget, program, enabled,
--       group_sizes, exact, group_dimensions, agent

local agent_hash, base, ready, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local FIRST_GROUP_KEY = 5
local hash_prefix = ARGV[1]              -- e.g. "as:session:{t}:agt_x:"
local order = ARGV[2]                    -- "key", "asc" or "desc"
local after_score = tonumber(ARGV[3])    -- nil in key order or on the first page
local after_member = ARGV[4]             -- "" on the first page
local limit = tonumber(ARGV[5])          -- 0: count only
local budget = tonumber(ARGV[6])
local program = ARGV[7] ~= '' and cjson.decode(ARGV[7]) or nil
local enabled = ARGV[8]                  -- "", "1" or "0"
local group_sizes = ARGV[9]              -- "" or the sizes of the groups of KEYS[5..], e.g. "2,1"
local exact_by_index = ARGV[10] == '1'
local group_dims = ARGV[11]              -- the dimension of each group, e.g. "priority,channel"
local agent = ARGV[12]                   -- the agent key (the expiry index names "<agent>/<session>")

if redis.call('EXISTS', agent_hash) == 0 then return {'agent_not_found'} end
if order ~= 'key' and redis.call('HEXISTS', ready, 'sort') == 0 then return {'index_not_ready'} end
local now = tonumber(now_ms())
if order ~= 'key' and after_member ~= '' and after_score == nil then
  -- a bare session key in a time order: after that session's place; from the first if it is not listed
  after_score = tonumber(redis.call('ZSCORE', base, after_member))
  if after_score == nil then after_member = '' end
end

-- The candidate source: a list of keys (their union, in key order) or one scored index.
local sources, size = {base}, redis.call('ZCARD', base)
if group_sizes ~= '' then
  local first, best, best_size, dims = FIRST_GROUP_KEY, nil, nil, {}
  for dim in string.gmatch(group_dims, '[^,]+') do dims[#dims + 1] = dim end
  local g = 0
  for n in string.gmatch(group_sizes, '%d+') do
    g = g + 1
    if redis.call('HEXISTS', ready, 'dim:' .. dims[g]) == 1 then
      local group, total = {}, 0
      for i = first, first + tonumber(n) - 1 do
        group[#group + 1] = KEYS[i]
        total = total + redis.call('ZCARD', KEYS[i])
      end
      if best == nil or total < best_size then best, best_size = group, total end
    end
    first = first + tonumber(n)
  end
  if best then
    sources, size = best, best_size
  else
    group_sizes, exact_by_index = '', false   -- no complete index: the key index, with the filter
  end
end
-- The count is the candidates' own (less the expired) when nothing but the index selects; else,
-- when they are few enough, every candidate is examined so that the count of matches is exact.
local by_size = (program == nil and enabled == '') or exact_by_index
local whole = not by_size and size <= budget

-- The candidates' size less those past their time-to-idle (not swept yet); -1 when too many of the
-- partition's sessions wait for the sweep to look at them all.
local function live_size()
  local due = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, budget + 1)
  if #due > budget then return -1 end
  local mine, gone = agent .. '/', 0
  for _, entry in ipairs(due) do
    if string.sub(entry, 1, #mine) == mine then
      local member = string.sub(entry, #mine + 1)
      for _, key in ipairs(sources) do
        if redis.call('ZSCORE', key, member) then
          gone = gone + 1
          break
        end
      end
    end
  end
  return size - gone
end

-- A count the indexes answer alone needs no walk.
if limit == 0 and after_member == '' and by_size then
  local live = live_size()
  if live >= 0 then return {'ok', live, '', '', live} end
end

-- -- the program (three-valued, as SQL: true, false or nil for unknown) ----------------------------

local function lookup(value, path)
  for _, part in ipairs(path) do
    if type(value) ~= 'table' then return nil end
    value = value[part]
    if value == nil then return nil end
  end
  return value
end

local function compare(value, op, literal)
  local kind = type(value)
  if value == nil or value == cjson.null or kind ~= type(literal) or kind == 'table' then return nil end
  if op == '=' then return value == literal end
  if op == '!=' then return value ~= literal end
  if kind == 'boolean' then return nil end
  local less, greater
  if kind == 'number' then
    less, greater = value < literal, value > literal
  else
    less, greater = bytes_before(value, literal), bytes_before(literal, value)
  end
  if op == '<' then return less elseif op == '<=' then return not greater
  elseif op == '>' then return greater else return not less end
end

local function eval(node, metadata)
  local op = node[1]
  if op == 'and' or op == 'or' then
    local decisive = op == 'or'      -- the value that decides: true for OR, false for AND
    local a = eval(node[2], metadata)
    if a == decisive then return decisive end
    local b = eval(node[3], metadata)
    if b == decisive then return decisive end
    if a == nil or b == nil then return nil end
    return not decisive
  elseif op == 'not' then
    local a = eval(node[2], metadata)
    if a == nil then return nil end
    return not a
  elseif op == 'cmp' then
    return compare(lookup(metadata, node[3]), node[2], node[4])
  elseif op == 'in' then
    local value, result = lookup(metadata, node[2]), false
    for _, literal in ipairs(node[3]) do
      local r = compare(value, '=', literal)
      if r then return true end
      if r == nil then result = nil end
    end
    return result
  elseif op == 'null' then
    local value = lookup(metadata, node[2])
    return value == nil or value == cjson.null
  end
  error('unknown filter node ' .. tostring(op))
end

local function matches(member)
  local fields = redis.call('HMGET', hash_prefix .. member, 'metadata', 'enabled', 'updated_at', 'tti_minutes')
  if not fields[3] then return false end
  local at = expires_at(fields[3], fields[4])
  if at and now >= at then return false end
  if enabled ~= '' and fields[2] ~= enabled then return false end
  if program == nil then return true end
  local ok, metadata = pcall(cjson.decode, fields[1])
  return ok and eval(program, metadata) == true
end

-- -- positions ------------------------------------------------------------------------------------

local function is_after(member, score)
  if after_member == '' then return true end
  if order == 'key' then return bytes_before(after_member, member) end
  if score ~= after_score then
    if order == 'asc' then return score > after_score end
    return score < after_score
  end
  if order == 'asc' then return bytes_before(after_member, member) end
  return bytes_before(member, after_member)   -- equal scores run backwards in ZREVRANGE
end

-- Candidates after `position` ({member, score}, or nil for the start), at most n, in order.
local rank   -- the next rank to read, in score order
local function chunk(position, n)
  local out = {}
  if order == 'key' then
    local start = position and ('(' .. position[1]) or '-'
    for _, key in ipairs(sources) do
      for _, member in ipairs(redis.call('ZRANGEBYLEX', key, start, '+', 'LIMIT', 0, n)) do
        out[#out + 1] = {member, 0}
      end
    end
    if #sources > 1 then table.sort(out, function(a, b) return bytes_before(a[1], b[1]) end) end
    for i = n + 1, #out do out[i] = nil end
    return out
  end
  if rank == nil then
    rank = 0
    if position then
      local score = redis.call('ZSCORE', base, position[1])
      if score and tonumber(score) == position[2] then
        rank = redis.call(order == 'asc' and 'ZRANK' or 'ZREVRANK', base, position[1]) + 1
      elseif order == 'asc' then   -- the member moved or left: start at its score, skip what precedes
        rank = redis.call('ZCOUNT', base, '-inf', '(' .. position[2])
      else
        rank = redis.call('ZCOUNT', base, '(' .. position[2], '+inf')
      end
    end
  end
  local reply = redis.call(order == 'asc' and 'ZRANGE' or 'ZREVRANGE', base, rank, rank + n - 1, 'WITHSCORES')
  rank = rank + #reply / 2
  for i = 1, #reply, 2 do out[#out + 1] = {reply[i], tonumber(reply[i + 1])} end
  return out
end

-- -- the walk -------------------------------------------------------------------------------------

local position = nil           -- the last candidate examined
if not whole and after_member ~= '' then position = {after_member, after_score} end
local examined, matched, counted, found, last_found = 0, 0, 0, {}, nil
local more, exhausted = false, false   -- a match follows the page; no candidate is left
while (whole or not more) and not exhausted and examined < budget do
  local want = math.min(100, budget - examined)
  local candidates = chunk(position, want)
  exhausted = #candidates < want
  for _, candidate in ipairs(candidates) do
    position = candidate
    examined = examined + 1
    local member, score = candidate[1], candidate[2]
    local after = is_after(member, score)
    if (after or whole) and matches(member) then
      counted = counted + 1
      if after then matched = matched + 1 end
      if after and #found < limit then
        found[#found + 1] = member
        last_found = candidate
      elseif after and limit > 0 then
        more = true
        if not whole then break end
      end
    end
  end
end
if whole then exhausted = true end

local total = -1
if by_size then
  total = live_size()
elseif whole then
  total = counted
end

-- Where the next page starts: after the page's last item when a match follows it; after the last
-- session examined when the budget ran out first; nowhere when the candidates are exhausted.
local next_score, next_member = '', ''
if more then
  next_score, next_member = string.format('%.0f', last_found[2]), last_found[1]
elseif not exhausted and position then
  next_score, next_member = string.format('%.0f', position[2]), position[1]
end

local reply = {'ok', total, next_score, next_member, matched}
for _, member in ipairs(found) do
  reply[#reply + 1] = {member, redis.call('HGETALL', hash_prefix .. member)}
end
return reply
