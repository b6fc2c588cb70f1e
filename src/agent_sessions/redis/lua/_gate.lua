-- _gate.lua: prelude for scripts that admit a request (see agent_sessions/redis/scripts.py): gate.lua, in front of
-- every authenticated request, and session_update.lua, which runs admit() first when the API already
-- knows the key's role and scope, so the PATCH is one round trip (see ratelimit.py); auth_failure.lua
-- charges a failed authentication to its client address.
--
-- Token buckets: a string "<tokens> <ts>" per bucket, written with its expiry in one SET. Tokens refill
-- continuously at `rate` per second up to `burst`, computed from Redis TIME (never an API server's
-- clock, so every API process shares one bucket correctly). A bucket key expires when it would be full
-- again, so idle buckets cost nothing. (Until 0.2.0 a bucket was a hash {tokens, ts}, written with
-- HSET and PEXPIRE: one command more on every request. One of those still alive reads as a full bucket
-- and is overwritten; it would have been full within its expiry anyway.)
--
-- Key layout:
--   as:apikey:{<sha256>}    hash  the key record (see access/store.py): id, role, agents, rate, burst, revoked_at…
--   as:rl:key:{<sha256>}    string  the key's bucket (the same tag as its record)
--   as:rl:addr:<address>    string  failed-authentication bucket of one client address (its own slot:
--                                   a failed authentication takes a second call, auth_failure.lua)
--
-- admit(record, key bucket, default rate, default burst) (the defaults apply to keys without a rate or
-- burst of their own) returns
--   {"ok" | "limited", remaining, ms_until_token, rate, burst}   a valid key: its own bucket decides
--   {"unknown"} | {"revoked"}       a failed authentication (the caller charges the address)
-- charge_failure(address bucket, failure rate, failure burst, verdict) returns
--   {"throttled", ms_until_token}   the address has failed too often (nothing taken)
--   {verdict}                       a token of the address bucket taken
-- A valid key is never refused for what others did from its address (a NAT, a proxy): the address
-- bucket only ever refuses invalid keys. Keys carry 144 random bits, so the bucket is there to make
-- failed attempts cost the sender, not to hide which keys exist.
-- Times are whole milliseconds, rounded up.
--
-- A bucket is written with pcall: when Redis is full (maxmemory, noeviction) the write is refused
-- and the request is judged on the bucket as read, so reads keep working while writes get 507.

-- Refill a bucket and, when take is true, take one token if there is one.
-- Returns allowed, tokens left, ms until the next whole token (0 when full).
local function take_token(key, rate, burst, take, now)
  local state = redis.pcall('GET', key)  -- an error: a bucket of before 0.3.0 (a hash), as if full
  local tokens = burst
  local left, at = nil, nil
  if type(state) == 'string' then left, at = string.match(state, '^(%S+) (%S+)$') end
  if left then
    tokens = math.min(burst, tonumber(left) + math.max(0, now - tonumber(at)) * rate / 1000)
  end
  local allowed = take and tokens >= 1
  if allowed then tokens = tokens - 1 end
  if take then
    if tokens >= burst then
      redis.call('DEL', key)
    else
      redis.pcall('SET', key, string.format('%.6f %.3f', tokens, now), 'PX', math.ceil((burst - tokens) * 1000 / rate))
    end
  end
  local wait = 0
  if tokens < burst then wait = math.ceil((math.floor(tokens) + 1 - tokens) * 1000 / rate) end
  return allowed, tokens, wait
end

local function admit(record_key, key_bucket, default_rate, default_burst)
  local now = clock_ms()
  local record = redis.call('HMGET', record_key, 'id', 'revoked_at', 'rate', 'burst')
  if record[1] and (record[2] or '') == '' then
    local rate = tonumber(record[3] or '') or tonumber(default_rate)
    local burst = tonumber(record[4] or '') or tonumber(default_burst)
    local allowed, tokens, wait = take_token(key_bucket, rate, burst, true, now)
    local status = 'limited'
    if allowed then status = 'ok' end
    return {status, math.floor(tokens), wait, tostring(rate), tostring(burst)}
  end
  if not record[1] then return {'unknown'} end
  return {'revoked'}
end

-- A failed authentication from one address: {"throttled", ms_until_token} if the address has failed
-- too often (nothing taken), else a token is taken and {verdict} is returned ("unknown" / "revoked").
local function charge_failure(address_bucket, fail_rate, fail_burst, verdict)
  local now = clock_ms()
  fail_rate, fail_burst = tonumber(fail_rate), tonumber(fail_burst)
  local _, fail_tokens, fail_wait = take_token(address_bucket, fail_rate, fail_burst, false, now)
  if fail_tokens < 1 then return {'throttled', fail_wait} end
  take_token(address_bucket, fail_rate, fail_burst, true, now)
  return {verdict}
end
