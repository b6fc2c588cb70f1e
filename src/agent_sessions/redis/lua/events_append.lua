-- events_append.lua: the relay appends outbox entries to the event log, before it acknowledges them.
-- The write scripts put each event in their partition's outbox only (a write touches one partition's
-- keys); the log is one stream for every partition, appended here in the order the relay reads each
-- outbox, so each session's events are in the log in version order.
--
-- Key layout: see events_page.lua; as:{events}:ids hash event id -> log entry id.
--
-- The entries come each as its field count n, then n fields and values (those of the outbox entry,
-- event_id among them).
-- An event already in the log (its id in the index) is skipped: a batch relayed again (a relay died
-- before acknowledging, or the broker refused) appends nothing twice.
--
-- Returns the number of entries appended.
--
-- KEYS: log, ids
-- ARGV: entries...

local log, ids = KEYS[1], KEYS[2]

local appended, i = 0, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local entry, event_id = {}, nil
  for j = i + 1, i + n, 2 do
    entry[#entry + 1] = ARGV[j]
    entry[#entry + 1] = ARGV[j + 1]
    if ARGV[j] == 'event_id' then event_id = ARGV[j + 1] end
  end
  if event_id and redis.call('HEXISTS', ids, event_id) == 0 then
    redis.call('HSET', ids, event_id, redis.call('XADD', log, '*', unpack(entry)))
    appended = appended + 1
  end
  i = i + n + 1
end
return appended
