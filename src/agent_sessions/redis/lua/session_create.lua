-- prelude: _clock _change _idempotency _index
-- session_create.lua: create one session under an existing agent, with its session.created event and
-- first history entry, atomically.
--
-- Key layout (prefix "as:"):
--   as:agent:{t}:<agent>              hash   the agent; must exist
--   as:session:{t}:<agent>:<session>  hash   name, description, metadata (canonical JSON), enabled ("1"/"0"),
--                                        created_at, updated_at (ms since epoch, Redis TIME), version
--   as:sessions:{t}:<agent>           zset   every session key of the agent, score 0, ordered by member
--   as:sessions:{t}:<agent>:on / :off zset   the enabled / disabled subset (for the list filter)
--   as:history:{t}:<agent>:<session>  list   the session's changes, newest first (see _change.lua)
--   as:outbox:{t}                     stream events for the relay (see _change.lua)
--   sort, dimension and expiry indexes: see _index.lua; tti_minutes: the session's time-to-idle, from
--                                        the request or the agent's default_tti_minutes (absent: none)
--   idempotency records, snapshots and index: see _idempotency.lua
--
-- Returns {"idempotency_mismatch"} | {"replay", status, field, value, ...}
--       | {"agent_not_found"} | {"session_exists"} | {"ok", field, value, ...} (the new hash, plus "key").
--
-- KEYS: agent, session, all_sessions, enabled_index, disabled_index, outbox, history,
--       history_bytes, idem_record, idem_index, created_index, updated_index, expiry_index
-- ARGV: agent, session, event_id, actor, request_id, name, description, metadata, enabled,
--       idem_fingerprint, idem_ttl, idem_max, idem_snapshots, history_max, history_max_bytes,
--       dimension_prefix, indexed, tti_minutes

local agent_hash, session_hash = KEYS[1], KEYS[2]
local all_index, enabled_index, disabled_index = KEYS[3], KEYS[4], KEYS[5]
local history, history_bytes = KEYS[7], KEYS[8]
local outbox = KEYS[6]   -- see emit_event in _change.lua
local idem = {
  record = KEYS[9], index = KEYS[10],                    -- unused without an Idempotency-Key
  fingerprint = ARGV[10], ttl = tonumber(ARGV[11]), max = tonumber(ARGV[12]), snapshots = ARGV[13],
}
local agent, session, event_id, actor, request_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local name, description, metadata, enabled = ARGV[6], ARGV[7], ARGV[8], ARGV[9]  -- enabled "1"/"0"
local history_cap, history_max_bytes = tonumber(ARGV[14]), tonumber(ARGV[15])
local index = index_of(ARGV[16], KEYS[11], KEYS[12], KEYS[13])  -- see _index.lua
local ix = ARGV[17]         -- the session's indexed values (see _index.lua)
local tti = ARGV[18]        -- minutes as text; "" for the agent's default_tti_minutes

local replay = idem_lookup(idem)
if replay then return replay end

if redis.call('EXISTS', agent_hash) == 0 then return idem_store(idem, 'agent_not_found') end
if redis.call('EXISTS', session_hash) == 1 then return idem_store(idem, 'session_exists') end

local now = now_ms()
if tti == '' then tti = redis.call('HGET', agent_hash, 'default_tti_minutes') or '0' end
local initial = {'name', name, 'description', description, 'metadata', metadata, 'enabled', enabled}
if tti ~= '0' then  -- absent means none: every event and read of a session without one stays smaller
  initial[#initial + 1] = 'tti_minutes'
  initial[#initial + 1] = tti
end
redis.call('HSET', session_hash, 'created_at', now, 'updated_at', now, 'version', 1, unpack(initial))
redis.call('ZADD', all_index, 0, session)
if enabled == '1' then
  redis.call('ZADD', enabled_index, 0, session)
else
  redis.call('ZADD', disabled_index, 0, session)
end
if ix ~= '' then redis.call('HSET', session_hash, 'ix', ix) end
reindex(index, session, nil, ix)
place(index, agent, session, now, now, tti)

local fields = redis.call('HGETALL', session_hash)
emit_event(outbox, 'session.created', event_id, agent, session, 1, now, actor, request_id, fields, {})
record_history(history, history_bytes, 1, now, actor, request_id, {}, initial, history_cap, history_max_bytes)
return idem_store(idem, 'ok', fields, session)
