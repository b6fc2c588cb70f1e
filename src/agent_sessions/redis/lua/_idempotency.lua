-- _idempotency.lua: prelude for scripts that honour an Idempotency-Key (see agent_sessions/redis/scripts.py).
--
-- The result of the first request with a key is stored by the same script that applied it, so a
-- retry, or a concurrent duplicate, finds the stored result instead of applying the change again.
-- What is kept is no more than a replay needs, and bounded per API key:
--   as:idem:{t}:<key id>:<sha256 of the Idempotency-Key>   hash, expires after ttl:
--       fp      fingerprint of the request (method, path, content type, If-Match, body)
--       status  the outcome ("ok", "noop", "session_not_found", …)
--       snap    (with a session answer) the snapshot holding it;  key  (a create) the session key
--   as:idem:snap:{t}:<agent>:<session>:<version>  hash   the session's fields at that version, and
--       ~refs, how many records refer to it: an answer is kept once per version, shared by every
--       record that returns it; it expires ttl after the last record that refers to it was written,
--       so never before them, and goes with the last of them to be forgotten.
--   as:idem:index:{t}:<key id>                    zset   the key's records by time written: past
--       `max` records the oldest are forgotten (a retry of those is applied anew), and entries older
--       than ttl are dropped from it. So a key holds at most `max` records and `max` answers.
--
-- `idem` is a table: record, index (key names), fingerprint ("": no Idempotency-Key), ttl (s), max,
-- snapshots (the snapshot key prefix, as:idem:snap:{t}:<agent>:<session>:).

local REFS = '~refs'  -- a snapshot's field counting the records that refer to it (never a session field)

-- nil when there is no record; otherwise a reply: {"idempotency_mismatch"} or {"replay", status, f, v, …}
local function idem_lookup(idem)
  if idem.fingerprint == '' then return nil end
  local record = redis.call('HMGET', idem.record, 'fp', 'status', 'snap', 'key')
  if not record[1] then return nil end
  if record[1] ~= idem.fingerprint then return {'idempotency_mismatch'} end
  local reply = {'replay', record[2]}
  if record[3] then
    local fields = redis.call('HGETALL', record[3])
    for i = 1, #fields, 2 do
      if fields[i] ~= REFS then
        reply[#reply + 1] = fields[i]
        reply[#reply + 1] = fields[i + 1]
      end
    end
  end
  if record[4] then
    reply[#reply + 1] = 'key'
    reply[#reply + 1] = record[4]
  end
  return reply
end

-- Store the outcome (status and, when given, the session's flat fields; for a create, its key) and
-- return the reply: {status, field, value, …} (with "key", session_key at the end for a create).
-- `skip` (optional): a set of fields the reply leaves out (the caller knows them); the record keeps all.
local function idem_store(idem, status, fields, session_key, skip)
  local reply = {status}
  if fields then
    for i = 1, #fields, 2 do
      if not (skip and skip[fields[i]]) then
        reply[#reply + 1] = fields[i]
        reply[#reply + 1] = fields[i + 1]
      end
    end
  end
  if session_key then
    reply[#reply + 1] = 'key'
    reply[#reply + 1] = session_key
  end
  if idem.fingerprint == '' then return reply end

  local record = {'fp', idem.fingerprint, 'status', status}
  if fields then
    local version
    for i = 1, #fields, 2 do
      if fields[i] == 'version' then version = fields[i + 1] end
    end
    local snap = idem.snapshots .. version
    redis.call('HSET', snap, unpack(fields))
    redis.call('HINCRBY', snap, REFS, 1)
    redis.call('EXPIRE', snap, idem.ttl)
    record[#record + 1] = 'snap'
    record[#record + 1] = snap
  end
  if session_key then
    record[#record + 1] = 'key'
    record[#record + 1] = session_key
  end
  redis.call('HSET', idem.record, unpack(record))
  redis.call('EXPIRE', idem.record, idem.ttl)

  local now = tonumber(now_ms())
  redis.call('ZADD', idem.index, now, idem.record)
  redis.call('ZREMRANGEBYSCORE', idem.index, '-inf', now - idem.ttl * 1000)
  local extra = redis.call('ZCARD', idem.index) - idem.max
  if extra > 0 then
    local oldest = redis.call('ZPOPMIN', idem.index, extra)
    for i = 1, #oldest, 2 do
      local snap = redis.call('HGET', oldest[i], 'snap')
      redis.call('DEL', oldest[i])
      if snap and redis.call('HINCRBY', snap, REFS, -1) <= 0 then redis.call('DEL', snap) end
    end
  end
  redis.call('EXPIRE', idem.index, idem.ttl)
  return reply
end
