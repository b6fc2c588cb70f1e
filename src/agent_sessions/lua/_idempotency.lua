-- _idempotency.lua: prelude for scripts that honour an Idempotency-Key (see lua/__init__.py).
--
-- The result of the first request with a key is stored by the same script that applied it, so a
-- retry, or a concurrent duplicate, finds the stored result instead of applying the change again.
-- Record (hash as:idem:<key id>:<sha256 of the Idempotency-Key>, expires after ARGV ttl):
--   fp      fingerprint of the request (method, path, content type, body)
--   status  the outcome ("ok", "noop", "session_not_found", …)
--   s:<field>  the session's fields as returned (for "ok" / "noop")

-- nil when there is no record; otherwise a reply: {"idempotency_mismatch"} or {"replay", status, f, v, …}
local function idem_lookup(key, fingerprint)
  if fingerprint == '' then return nil end
  local record = redis.call('HGETALL', key)
  if #record == 0 then return nil end
  local reply, fp, status = {}, nil, nil
  for i = 1, #record, 2 do
    local field = record[i]
    if field == 'fp' then
      fp = record[i + 1]
    elseif field == 'status' then
      status = record[i + 1]
    elseif string.sub(field, 1, 2) == 's:' then
      reply[#reply + 1] = string.sub(field, 3)
      reply[#reply + 1] = record[i + 1]
    end
  end
  if fp ~= fingerprint then return {'idempotency_mismatch'} end
  table.insert(reply, 1, status)
  table.insert(reply, 1, 'replay')
  return reply
end

-- Store the outcome (status and, when given, the session's flat fields) and return the reply.
local function idem_store(key, fingerprint, ttl, status, fields)
  local reply = {status}
  if fields then
    for i = 1, #fields do reply[#reply + 1] = fields[i] end
  end
  if fingerprint ~= '' then
    local record = {'fp', fingerprint, 'status', status}
    if fields then
      for i = 1, #fields, 2 do
        record[#record + 1] = 's:' .. fields[i]
        record[#record + 1] = fields[i + 1]
      end
    end
    redis.call('HSET', key, unpack(record))
    redis.call('EXPIRE', key, ttl)
  end
  return reply
end

