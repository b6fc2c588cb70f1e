-- _delivery.lua: prelude for the scripts of webhook deliveries (delivery_*.lua, deliveries_page.lua).
--
-- One endpoint's deliveries, one row per message (a session event, or an escalation):
--   as:whd:{<endpoint>}        hash  message id -> row (JSON: type, status, attempts, seq,
--                                    last_status_code, last_error, created_at, next_attempt_at,
--                                    delivered_at; times in ms as strings); field "#seq" counts rows
--   as:whb:{<endpoint>}        hash  message id -> the body to send (kept until it is delivered)
--   as:whq:{<endpoint>}        zset  messages to attempt, by when (ms); one being attempted is leased:
--                                    scored at the end of its lease, after which anyone may retry it
--   as:whl:{<endpoint>}        zset  every row, by seq (the order rows were made)
--   as:whl:{<endpoint>}:<status> zset  the rows in each status (pending, delivered, failed, dead), by seq
--   as:wht:{<endpoint>}        hash  message id -> its attempts (JSON list, oldest first, each
--                                    {"at", "status_code", "error", "duration_ms"}; the newest
--                                    ATTEMPTS_KEPT of a delivery), dropped with its row
--
-- A row's `attempts` counts every attempt of the message, redeliveries included; `tries` counts those
-- since it was last queued (a redelivery starts a fresh retry schedule). Rows written before `tries`
-- existed count their attempts as tries.
--
-- The scripts take these keys in this order: rows, bodies, queue, log, then the four status sets (and
-- the attempts where a script names them).

local STATUS_SLOT = {pending = 5, delivered = 6, failed = 7, dead = 8}

local function status_set(status)
  return KEYS[STATUS_SLOT[status]]
end

local function put_row(rows, id, row)
  redis.call('HSET', rows, id, cjson.encode(row))
end

-- Move a row to another status (and the matching status set).
local function set_status(row, id, status)
  if row.status then redis.call('ZREM', status_set(row.status), id) end
  row.status = status
  redis.call('ZADD', status_set(status), row.seq, id)
end
