-- prelude: _change _idempotency
-- session_create.lua: create one session under an existing agent, with its session.created event and
-- first history entry, atomically.
--
-- Key layout (prefix "as:"):
--   as:agent:<agent>              hash   the agent; must exist
--   as:session:<agent>:<session>  hash   name, description, metadata (canonical JSON), enabled ("1"/"0"),
--                                        created_at, updated_at (ms since epoch, Redis TIME), version
--   as:sessions:<agent>           zset   every session key of the agent, score 0, ordered by member
--   as:sessions:<agent>:on / :off zset   the enabled / disabled subset (for the list filter)
--   as:history:<agent>:<session>  list   the session's changes, newest first (see _change.lua)
--   as:outbox                     stream events for the relay (see _change.lua)
--
-- KEYS[1] agent hash      KEYS[2] session hash
-- KEYS[3] all-sessions    KEYS[4] enabled index    KEYS[5] disabled index    KEYS[6] outbox
-- KEYS[7] history         KEYS[8] idempotency record (unused without one)
-- ARGV[1] agent key       ARGV[2] session key      ARGV[3] event id    ARGV[4] actor   ARGV[5] request id
-- ARGV[6] name            ARGV[7] description      ARGV[8] metadata JSON     ARGV[9] enabled ("1"/"0")
-- ARGV[10] request fingerprint ("" without an Idempotency-Key)   ARGV[11] its ttl (s)
-- ARGV[12] history cap
--
-- Returns {"idempotency_mismatch"} | {"replay", status, field, value, ...}
--       | {"agent_not_found"} | {"exists"} | {"ok", field, value, ...} (the new hash, plus "key").

local replay = idem_lookup(KEYS[8], ARGV[10])
if replay then return replay end
local function finish(status, fields)
  return idem_store(KEYS[8], ARGV[10], tonumber(ARGV[11]), status, fields)
end

if redis.call('EXISTS', KEYS[1]) == 0 then return finish('agent_not_found') end
if redis.call('EXISTS', KEYS[2]) == 1 then return finish('exists') end

local now = now_ms()
local initial = {'name', ARGV[6], 'description', ARGV[7], 'metadata', ARGV[8], 'enabled', ARGV[9]}
redis.call('HSET', KEYS[2], 'created_at', now, 'updated_at', now, 'version', 1, unpack(initial))
redis.call('ZADD', KEYS[3], 0, ARGV[2])
if ARGV[9] == '1' then
  redis.call('ZADD', KEYS[4], 0, ARGV[2])
else
  redis.call('ZADD', KEYS[5], 0, ARGV[2])
end

local fields = redis.call('HGETALL', KEYS[2])
emit_event(KEYS[6], 'session.created', ARGV[3], ARGV[1], ARGV[2], 1, now, ARGV[4], ARGV[5], fields, {})
record_history(KEYS[7], 1, now, ARGV[4], ARGV[5], {}, initial, tonumber(ARGV[12]))
fields[#fields + 1] = 'key'
fields[#fields + 1] = ARGV[2]
return finish('ok', fields)
