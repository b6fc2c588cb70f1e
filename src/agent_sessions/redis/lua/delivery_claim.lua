-- prelude: _clock
-- delivery_claim.lua: take the messages of one endpoint that are due for attempts, up to a count, and
-- lease them: each is rescored to the end of the lease, so no one else takes it meanwhile, and anyone
-- may once the lease is over (the worker attempting it died). The delivery loop sends one call per
-- endpoint, together in one pipeline (webhooks/store.py): on a Redis Cluster each endpoint has its own
-- slot.
--
-- Key layout: see _delivery.lua and webhook_endpoint_create.lua: the endpoint's queue, its bodies and
-- its record (as:whq:{<endpoint>}, as:whb:{<endpoint>}, as:whe:{<endpoint>}).
--
-- Returns {url, secrets, max_retries, min_backoff_ms, max_backoff_ms, id, body, id, body, ...}: the
-- endpoint's delivery fields as they are now (a change or a rotation applies from the next attempt on;
-- "" for an endpoint without a record, a field it does not set, or when nothing was due: an idle poll
-- reads no record), then what was taken.
--
-- KEYS: queue, bodies, endpoint
-- ARGV: lease_ms, count

local queue, bodies, endpoint = KEYS[1], KEYS[2], KEYS[3]
local lease_ms, count = tonumber(ARGV[1]), tonumber(ARGV[2])

local now = tonumber(now_ms())
local taken = {'', '', '', '', ''}
local due = {}
if count > 0 then due = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'LIMIT', 0, count) end
if #due > 0 then
  taken = redis.call('HMGET', endpoint, 'url', 'secrets', 'max_retries', 'min_backoff_ms', 'max_backoff_ms')
  for f = 1, #taken do taken[f] = taken[f] or '' end
  for _, id in ipairs(due) do
    local body = redis.call('HGET', bodies, id)
    if body then
      redis.call('ZADD', queue, now + lease_ms, id)
      taken[#taken + 1] = id
      taken[#taken + 1] = body
    else
      redis.call('ZREM', queue, id)  -- its row was dropped (the endpoint was deleted meanwhile)
    end
  end
end
return taken
