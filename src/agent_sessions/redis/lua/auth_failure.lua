-- prelude: _clock _gate
-- auth_failure.lua: a failed authentication (gate.lua or session_update.lua answered "unknown" or
-- "revoked"), charged to the client address's bucket (see _gate.lua's charge_failure).
--
-- Returns {"throttled", ms_until_token} | {verdict}
--
-- KEYS: address_bucket
-- ARGV: failure_rate, failure_burst, verdict
--   (failed authentications per second and per address, their burst, the verdict to answer once
--   charged)

return charge_failure(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
