-- prelude: _log
-- events_trim.lua: one bounded step of the event log's retention: drop, oldest first, the entries
-- older than the cutoff and those beyond the newest `max_events`, at most `batch` of them, with
-- their index entries; remember the last one dropped (a cursor before it has expired).
-- The relay reads the outbox, never the log: trimming the log cannot lose an undelivered event.
--
-- Key layout: see events_page.lua; as:{events}:ids hash event id -> entry id.
--
-- Returns the number of entries dropped (the caller steps again while it is `batch`).
--
-- KEYS: log, ids, trimmed
-- ARGV: cutoff_ms, max_events, batch

local log, ids, trimmed_mark = KEYS[1], KEYS[2], KEYS[3]
local cutoff_ms = tonumber(ARGV[1])    -- entries written before this (ms since the epoch) go
local max_events = tonumber(ARGV[2])   -- the log keeps at most this many
local batch = tonumber(ARGV[3])        -- entries dropped per call at most

local excess = redis.call('XLEN', log) - max_events
local entries = redis.call('XRANGE', log, '-', '+', 'COUNT', batch)
local dropped = {}
for i, entry in ipairs(entries) do
  local ms = parse_id(entry[1])
  if ms >= cutoff_ms and i > excess then break end
  dropped[#dropped + 1] = entry[1]
  local event_id = entry_field(entry[2], 'event_id')
  if event_id then redis.call('HDEL', ids, event_id) end
end
if #dropped == 0 then return 0 end

redis.call('XDEL', log, unpack(dropped))
redis.call('SET', trimmed_mark, dropped[#dropped])
return #dropped
