-- history_page.lua: one page of a session's history, newest first (read only).
--
-- Key layout: see session_create.lua and _change.lua (the history list holds one entry per version,
-- newest first, so the entry of version v is at index head_version - v).
--
-- Returns {"agent_not_found"} | {"session_not_found"} | {"ok", total, entry, ...}
--
-- KEYS: agent, session, history
-- ARGV: below, limit

local agent_hash, session_hash, history = KEYS[1], KEYS[2], KEYS[3]
local below = ARGV[1]              -- exclusive upper version ("" for the newest)
local limit = tonumber(ARGV[2])    -- page size

if redis.call('EXISTS', agent_hash) == 0 then return {'agent_not_found'} end
if redis.call('EXISTS', session_hash) == 0 then return {'session_not_found'} end

local start = 0
if below ~= '' then
  local head = redis.call('LINDEX', history, 0)
  if not head then return {'ok', 0} end
  start = math.max(0, cjson.decode(head).v - tonumber(below) + 1)
end
local reply = {'ok', redis.call('LLEN', history)}
local entries = redis.call('LRANGE', history, start, start + limit - 1)
for i = 1, #entries do reply[#reply + 1] = entries[i] end
return reply
