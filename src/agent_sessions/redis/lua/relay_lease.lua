-- relay_lease.lua: one relay's lease on one partition's outbox (see agent_sessions/events/leases.py):
-- while it holds it, no other relay reads that stream, so each session's events leave in order.
--
-- Key layout: as:lease:{t}  string  the relay holding the partition (tag {t}); expires after lease_ms
-- unless renewed, so a dead relay's partitions are free again within that time.
--
-- op: "take" (take it if free, renew it if ours) or "drop" (free it if ours); relay: the relay's
-- name. Returns 1 (ours after "take"; freed after "drop") or 0.
--
-- KEYS: lease
-- ARGV: op, relay, lease_ms

local lease = KEYS[1]
local op, relay, lease_ms = ARGV[1], ARGV[2], ARGV[3]

local holder = redis.call('GET', lease)
if op == 'drop' then
  if holder == relay then redis.call('DEL', lease) return 1 end
  return 0
end
if holder and holder ~= relay then return 0 end
redis.call('SET', lease, relay, 'PX', lease_ms)
return 1
