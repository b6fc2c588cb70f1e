-- prelude: _gate
-- gate.lua: the front door of every authenticated request, in one round trip (see _gate.lua).
--
-- KEYS[1] key record    KEYS[2] key bucket    KEYS[3] address bucket
-- ARGV[1] default rate (tokens/s)   ARGV[2] default burst   (used when the key has none of its own)
-- ARGV[3] failure rate (tokens/s)   ARGV[4] failure burst
--
-- Returns admit()'s reply; when the key was found ("ok" or "limited"), followed by the key record's
-- field, value pairs, from which the API learns the key's role and agents.

local reply = admit(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if reply[1] == 'ok' or reply[1] == 'limited' then
  local record = redis.call('HGETALL', KEYS[1])
  for i = 1, #record do reply[#reply + 1] = record[i] end
end
return reply
