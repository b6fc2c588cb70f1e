-- prelude: _log
-- events_page.lua: one page of the event log after a position, filtered, for GET /v2/events and its
-- feed (read only).
--
-- Key layout:
--   as:{events}           stream  every event, as the outbox entry (see _change.lua), appended by the relay
--                                 (events_append.lua): each session's events in version order
--   as:{events}:trimmed   string  the id of the last entry the retention trimmed (see events_trim.lua)
--
-- Examines entries in order from just after `after` until `limit` match or `scan_max` have been
-- examined (a filter that matches little still costs a bounded amount per call); the caller goes on
-- from the last examined entry.
--
-- Returns {"cursor_expired"} (entries after `after` were trimmed)
--       | {"ok", position to go on after (the last examined id), has_more (0/1), {id, {field, value, ...}}, ...}
--
-- KEYS: log, trimmed
-- ARGV: after, limit, scan_max, agents, session, types, chunk

local log, trimmed_mark = KEYS[1], KEYS[2]
local after = ARGV[1]                  -- exclusive start entry id; "" for the oldest retained
local limit = tonumber(ARGV[2])        -- matching entries to return at most
local scan_max = tonumber(ARGV[3])     -- entries to examine at most
local agents = set_of(ARGV[4])         -- agent keys; "" for all
local session = ARGV[5]                -- a session key; "" for all
local types = set_of(ARGV[6])          -- event types; "" for all
local chunk = tonumber(ARGV[7])        -- entries read per XRANGE

local trimmed = redis.call('GET', trimmed_mark)
if after ~= '' and trimmed and compare_ids(after, trimmed) < 0 then return {'cursor_expired'} end

local start = '-'
if after ~= '' then start = '(' .. after end
local matched, examined, last = {}, 0, ''
local done = false
while not done do
  local entries = redis.call('XRANGE', log, start, '+', 'COUNT', math.min(chunk, scan_max - examined))
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    examined = examined + 1
    last = entry[1]
    if (not agents or agents[entry_field(fields, 'agent_key')])
        and (session == '' or entry_field(fields, 'session_key') == session)
        and (not types or types[entry_field(fields, 'type')]) then
      matched[#matched + 1] = entry
      if #matched == limit then break end
    end
  end
  done = #matched == limit or examined >= scan_max or #entries < chunk
  start = '(' .. last
end

-- Nothing examined: the position stays where it was (for the oldest retained: the last trimmed entry).
if last == '' then last = (after ~= '' and after) or trimmed or '0-0' end
local has_more = 0
if #redis.call('XRANGE', log, '(' .. last, '+', 'COUNT', 1) > 0 then has_more = 1 end
local reply = {'ok', last, has_more}
for _, entry in ipairs(matched) do reply[#reply + 1] = entry end
return reply
