-- webhook_endpoint_delete.lua: delete an endpoint with its whole delivery log, in constant time
-- (UNLINK frees the log's keys in the background, whatever their size).
--
-- Key layout: see webhook_endpoint_create.lua and delivery_enqueue.lua.
--
-- Returns 1 (deleted) | 0 (no such endpoint)

local endpoint = KEYS[1]  -- KEYS[2..10]: the endpoint's delivery keys and attempts (_delivery.lua), one tag

if redis.call('EXISTS', endpoint) == 0 then return 0 end
redis.call('DEL', endpoint)
for i = 2, 10 do redis.call('UNLINK', KEYS[i]) end
return 1
