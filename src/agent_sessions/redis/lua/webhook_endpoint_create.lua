-- prelude: _clock
-- webhook_endpoint_create.lua: store a new webhook endpoint, within the bound on how many there are.
--
-- Key layout:
--   as:whe:{<endpoint>} hash  url, description, event_types (JSON list), agent_keys (JSON list or
--                             null), enabled ("1"/"0"), metadata (JSON), secrets (JSON list of
--                             {"secret", "expires_ms"}, newest first; 0: no expiry), created_at,
--                             updated_at (ms)
--   as:whes             zset  endpoint ids, scored by created_at
--
-- Returns {"exists"} | {"full"} | {"ok", field, value, ...} (the hash as stored)

local endpoint, endpoints = KEYS[1], KEYS[2]
local id, max_endpoints = ARGV[1], tonumber(ARGV[2])
local first_field = 3  -- ARGV[3..]: field, value pairs

if redis.call('EXISTS', endpoint) == 1 then return {'exists'} end
if redis.call('ZCARD', endpoints) >= max_endpoints then return {'full'} end
local now = now_ms()
local fields = {}
for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', endpoint, 'created_at', now, 'updated_at', now, unpack(fields))
redis.call('ZADD', endpoints, now, id)
local reply = redis.call('HGETALL', endpoint)
table.insert(reply, 1, 'ok')
return reply
