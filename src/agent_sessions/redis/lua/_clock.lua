-- _clock.lua: prelude for every script that needs the time (see agent_sessions/redis/scripts.py).
-- Time always comes from Redis TIME, never from an API server's clock, so every process agrees. A
-- script reads it once: one call of a script is one atomic step, at one moment.

local clock_read

-- Milliseconds since the epoch, with the microseconds as a fraction (for token buckets).
local function clock_ms()
  if not clock_read then
    local t = redis.call('TIME')
    clock_read = t[1] * 1000 + t[2] / 1000
  end
  return clock_read
end

-- Whole milliseconds since the epoch, as the string the hashes and events store.
local function now_ms()
  return tostring(math.floor(clock_ms()))
end
