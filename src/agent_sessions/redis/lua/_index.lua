-- _index.lua: prelude of the scripts that create, change or remove sessions (and of sessions_find.lua):
-- the indexes a session is in besides its agent's key index, kept in the same atomic step as the
-- write, so a list never shows a session under a value or an order it no longer has.
--
--   as:sessions:{t}:<agent>:created      zset  score created_at (ms): the order of sort=created_at
--   as:sessions:{t}:<agent>:updated      zset  score updated_at (ms): the order of sort=updated_at
--   as:idx:{t}:<agent>:<dimension>=<v>   zset  score 0: sessions whose metadata.<dimension> is the string v
--                                          (report dimensions only; v at most 128 bytes)
--   as:expiry:{t}                        zset  score expires_at (ms), member "<agent>/<session>": sessions
--                                          with a time-to-idle, for the workers' sweep
--
-- A session's indexed values are kept in its hash, field `ix`: JSON {dimension: value} of the report
-- dimensions whose value is a string of at most 128 bytes ("" for none). The API computes it from the
-- metadata it already parsed (sessions/indexes.py), so a PATCH compares two strings and decodes nothing
-- unless an indexed value changed; `sessions_reindex.lua` computes it in Lua (`ix_of`).
--
-- `index` is {prefix = "as:idx:{t}:<agent>:", created = key, updated = key, expiry = key}.

local function index_of(prefix, created, updated, expiry)
  return {prefix = prefix, created = created, updated = updated, expiry = expiry}
end

-- Byte order, as Redis orders members (Lua's own `<` on strings follows the server's locale).
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function decode_ix(ix)
  if not ix or ix == '' then return {} end
  return cjson.decode(ix)
end

-- Move a session between dimension indexes as its indexed values go from `old` to `new` (`ix` texts;
-- nil for none: a new or a removed session).
local function reindex(index, session, old, new)
  if old == new then return end
  local before, after = decode_ix(old), decode_ix(new)
  for dim, value in pairs(before) do
    if after[dim] ~= value then redis.call('ZREM', index.prefix .. dim .. '=' .. value, session) end
  end
  for dim, value in pairs(after) do
    if before[dim] ~= value then redis.call('ZADD', index.prefix .. dim .. '=' .. value, 0, session) end
  end
end

-- The `ix` of a metadata JSON text, for `dims` (a list) and values of at most `max_bytes` bytes.
local function ix_of(metadata, dims, max_bytes)
  local ok, decoded = pcall(cjson.decode, metadata or '')
  if not ok or type(decoded) ~= 'table' then return '' end
  local values, any = {}, false
  for _, dim in ipairs(dims) do
    local value = decoded[dim]
    if type(value) == 'string' and #value <= max_bytes then values[dim], any = value, true end
  end
  return any and cjson.encode(values) or ''
end

-- When a session idle since `updated_at` (ms) expires, with time-to-idle `tti` (minutes, text; "0",
-- "" or nil: never): nil or ms. Python computes the same (representations.expires_at).
local function expires_at(updated_at, tti)
  local minutes = tonumber(tti or '0') or 0
  if minutes <= 0 then return nil end
  return tonumber(updated_at) + math.floor(minutes * 60000)
end

-- One field of a flat HGETALL reply.
local function field_of(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

-- Whether a session's hash fields (flat list) say it has expired at `now`.
local function expired(fields, now)
  local updated_at = field_of(fields, 'updated_at')
  local at = updated_at and expires_at(updated_at, field_of(fields, 'tti_minutes'))
  return at ~= nil and tonumber(now) >= at
end

-- After a write: the session's place in the sort and expiry indexes. `previous_tti`: its time-to-idle
-- before the write (nil: it had none, so it is not in the expiry index).
local function place(index, agent, session, created_at, updated_at, tti, previous_tti)
  if created_at then redis.call('ZADD', index.created, created_at, session) end
  redis.call('ZADD', index.updated, updated_at, session)
  local at = expires_at(updated_at, tti)
  if at then
    redis.call('ZADD', index.expiry, at, agent .. '/' .. session)
  elseif expires_at(updated_at, previous_tti) then
    redis.call('ZREM', index.expiry, agent .. '/' .. session)
  end
end

-- Before a session is removed: out of every index of this file (`ix`: its indexed values).
local function unplace(index, agent, session, ix)
  reindex(index, session, ix, nil)
  redis.call('ZREM', index.created, session)
  redis.call('ZREM', index.updated, session)
  redis.call('ZREM', index.expiry, agent .. '/' .. session)
end
