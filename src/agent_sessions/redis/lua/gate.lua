-- prelude: _clock _gate
-- gate.lua: the front door of every authenticated request, in one round trip for a valid key (see
-- _gate.lua; an invalid one is then charged to its address by auth_failure.lua).
--
-- Returns admit()'s reply; when the key was found ("ok" or "limited"), followed by the key record's
-- field, value pairs, from which the API learns the key's role and agents.
--
-- KEYS: key_record, key_bucket
-- ARGV: default_rate, default_burst

local key_record, key_bucket = KEYS[1], KEYS[2]       -- one tag: the key's digest
local default_rate, default_burst = ARGV[1], ARGV[2]  -- tokens/s and bucket size, for keys without their own

local reply = admit(key_record, key_bucket, default_rate, default_burst)
if reply[1] == 'ok' or reply[1] == 'limited' then
  local record = redis.call('HGETALL', key_record)
  for i = 1, #record do reply[#reply + 1] = record[i] end
end
return reply
