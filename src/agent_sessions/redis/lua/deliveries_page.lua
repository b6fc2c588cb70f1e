-- deliveries_page.lua: one page of an endpoint's delivery log, newest first, with its rows.
--
-- Key layout: see _delivery.lua. KEYS[1]: the log, or the log of one status; KEYS[2]: the rows.
--
-- Returns {next_seq_or_"", row, row, ...} (rows as stored, each with "id" added)
--
-- KEYS: log, rows
-- ARGV: before, limit

local log, rows = KEYS[1], KEYS[2]
local before, limit = ARGV[1], tonumber(ARGV[2])  -- before: exclusive seq to start below ("" first page)

local top = '+inf'
if before ~= '' then top = '(' .. before end
local ids = redis.call('ZREVRANGEBYSCORE', log, top, '-inf', 'LIMIT', 0, limit + 1)
local reply = {''}
for i, id in ipairs(ids) do
  if i > limit then break end
  local stored = redis.call('HGET', rows, id)
  if stored then
    local row = cjson.decode(stored)
    row.id = id
    reply[#reply + 1] = cjson.encode(row)
    if i == limit and #ids > limit then reply[1] = string.format("%d", row.seq) end
  end
end
return reply
