-- prelude: _clock
-- webhook_endpoint_create.lua: store a new webhook endpoint's record (the caller then lists it in
-- as:whes, another slot on a Redis Cluster, and checks the bound on how many there are: webhooks/store.py).
--
-- Key layout:
--   as:whe:{<endpoint>} hash  url, description, event_types (JSON list), agent_keys (JSON list or
--                             null), enabled ("1"/"0"), metadata (JSON), secrets (JSON list of
--                             {"secret", "expires_ms"}, newest first; 0: no expiry), created_at,
--                             updated_at (ms), subscribed_at (ms: when what it subscribes to began,
--                             see webhook_endpoint_update.lua)
--   as:whes             zset  endpoint ids, scored by created_at (written by the caller)
--
-- Returns {"exists"} | {"ok", field, value, ...} (the hash as stored)
--
-- KEYS: endpoint
-- ARGV: fields...

local endpoint = KEYS[1]
local first_field = 1  -- ARGV[1..]: field, value pairs

if redis.call('EXISTS', endpoint) == 1 then return {'exists'} end
local now = now_ms()
local fields = {}
for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', endpoint, 'created_at', now, 'updated_at', now, 'subscribed_at', now, unpack(fields))
local reply = redis.call('HGETALL', endpoint)
table.insert(reply, 1, 'ok')
return reply
