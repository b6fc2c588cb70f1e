-- prelude: _clock
-- webhook_secret_rotate.lua: put a new signing secret first; the secrets in use until now stay valid
-- for grace_ms more (deliveries meanwhile carry a signature for each), then drop out. Expired secrets
-- are removed here, and at most max_secrets are kept (the oldest go first).
--
-- Key layout: see webhook_endpoint_create.lua.
--
-- Returns {"endpoint_not_found"} | {"ok", field, value, ...} (the hash after)
--
-- KEYS: endpoint
-- ARGV: new_secret, grace_ms, max_secrets

local endpoint = KEYS[1]
local new_secret, grace_ms, max_secrets = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

if redis.call('EXISTS', endpoint) == 0 then return {'endpoint_not_found'} end
local now = tonumber(now_ms())
local until_ms = now + grace_ms
local kept = {{secret = new_secret, expires_ms = 0}}
for _, old in ipairs(cjson.decode(redis.call('HGET', endpoint, 'secrets'))) do
  local expires = tonumber(old.expires_ms)
  if expires == 0 or expires > until_ms then expires = until_ms end
  if expires > now and #kept < max_secrets then
    kept[#kept + 1] = {secret = old.secret, expires_ms = string.format('%d', expires)}
  end
end
kept[1].expires_ms = '0'
redis.call('HSET', endpoint, 'secrets', cjson.encode(kept), 'updated_at', tostring(now))
local reply = redis.call('HGETALL', endpoint)
table.insert(reply, 1, 'ok')
return reply
