-- prelude: _clock
-- webhook_endpoint_update.lua: change some fields of a webhook endpoint; a no-op when every value
-- equals the stored one. When what it subscribes to changes (event_types, agent_keys, enabled), the
-- subscription it had is kept beside the new one with the moment of the change, so that the relay
-- matches an event committed before the change against the subscription of that time
-- (webhooks/store.py, Fanout), however late it relays it.
--
-- Key layout: see webhook_endpoint_create.lua; the fields of the subscription's change:
--   subscribed_at  ms (Redis TIME) when the current subscription began (its create, or its last change)
--   previous       JSON {"event_types", "agent_keys", "enabled"} of the subscription before it ("" at create)
--
-- The changes: field, value pairs among url, description, event_types (JSON), agent_keys (JSON),
-- enabled ("1"/"0"), metadata (JSON), max_retries, min_backoff_ms, max_backoff_ms.
-- Returns {"endpoint_not_found"} | {"noop", field, value, ...} | {"ok", field, value, ...} (the hash after).
--
-- KEYS: endpoint
-- ARGV: changes...

local endpoint = KEYS[1]
local first_change = 1

if redis.call('EXISTS', endpoint) == 0 then return {'endpoint_not_found'} end

local SUBSCRIPTION = {event_types = true, agent_keys = true, enabled = true}
local changed, subscription_changed = {}, false
for i = first_change, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', endpoint, field) ~= value then
    changed[#changed + 1] = field
    changed[#changed + 1] = value
    if SUBSCRIPTION[field] then subscription_changed = true end
  end
end

local status = 'noop'
if #changed > 0 then
  status = 'ok'
  local now = now_ms()
  if subscription_changed then
    local before = redis.call('HMGET', endpoint, 'event_types', 'agent_keys', 'enabled')
    local previous = cjson.encode({event_types = before[1], agent_keys = before[2], enabled = before[3]})
    redis.call('HSET', endpoint, 'previous', previous, 'subscribed_at', now)
  end
  redis.call('HSET', endpoint, 'updated_at', now, unpack(changed))
end

local reply = redis.call('HGETALL', endpoint)
table.insert(reply, 1, status)
return reply
