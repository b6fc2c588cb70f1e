-- webhook_endpoint_delete.lua: delete an endpoint with its whole delivery log, in constant time
-- (UNLINK frees the log's keys in the background, whatever their size).
--
-- Key layout: see webhook_endpoint_create.lua and delivery_enqueue.lua.
--
-- Returns 1 (deleted) | 0 (no such endpoint)
--
-- KEYS: rows, bodies, queue, log, pending, delivered, failed, dead, endpoint, attempts
-- ARGV: (none)

local endpoint = KEYS[9]  -- KEYS[1..8] and [10]: its delivery keys and attempts (_delivery.lua), one tag

if redis.call('EXISTS', endpoint) == 0 then return 0 end
redis.call('DEL', endpoint)
for i = 1, 10 do
  if i ~= 9 then redis.call('UNLINK', KEYS[i]) end
end
return 1
