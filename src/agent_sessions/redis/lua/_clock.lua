-- _clock.lua: prelude for every script that needs the time (see agent_sessions/redis/scripts.py).
-- Time always comes from Redis TIME, never from an API server's clock, so every process agrees.

-- Milliseconds since the epoch, with the microseconds as a fraction (for token buckets).
local function clock_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + t[2] / 1000
end

-- Whole milliseconds since the epoch, as the string the hashes and events store.
local function now_ms()
  return tostring(math.floor(clock_ms()))
end

