-- webhook_endpoint_delete.lua: delete an endpoint with its whole delivery log, in constant time
-- (UNLINK frees the log's keys in the background, whatever their size).
--
-- Key layout: see webhook_endpoint_create.lua and delivery_enqueue.lua.
--
-- Returns 1 (deleted) | 0 (no such endpoint)

local endpoint, endpoints = KEYS[1], KEYS[2]
local id = ARGV[1]
local dead, counters = KEYS[10], KEYS[11]  -- KEYS[3..10]: the endpoint's delivery keys (_delivery.lua)

if redis.call('EXISTS', endpoint) == 0 then return 0 end
redis.call('DEL', endpoint)
redis.call('ZREM', endpoints, id)
local dead_letters = redis.call('ZCARD', dead)
if dead_letters > 0 then redis.call('HINCRBY', counters, 'webhooks:dead', -dead_letters) end
for i = 3, 10 do redis.call('UNLINK', KEYS[i]) end
return 1
