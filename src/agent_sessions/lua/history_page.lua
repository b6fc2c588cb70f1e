-- history_page.lua: one page of a session's history, newest first (read only).
--
-- Key layout: see session_create.lua and _change.lua (the history list holds one entry per version,
-- newest first, so the entry of version v is at index head_version - v).
--
-- KEYS[1] agent hash    KEYS[2] session hash    KEYS[3] history list
-- ARGV[1] exclusive upper version ("" for the newest)    ARGV[2] page size
--
-- Returns {"agent_not_found"} | {"session_not_found"} | {"ok", total, entry, ...}

if redis.call('EXISTS', KEYS[1]) == 0 then return {'agent_not_found'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'session_not_found'} end

local start = 0
if ARGV[1] ~= '' then
  local head = redis.call('LINDEX', KEYS[3], 0)
  if not head then return {'ok', 0} end
  start = math.max(0, cjson.decode(head).v - tonumber(ARGV[1]) + 1)
end
local reply = {'ok', redis.call('LLEN', KEYS[3])}
local entries = redis.call('LRANGE', KEYS[3], start, start + tonumber(ARGV[2]) - 1)
for i = 1, #entries do reply[#reply + 1] = entries[i] end
return reply
