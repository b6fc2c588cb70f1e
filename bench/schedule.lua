-- schedule.lua: the open-loop schedule the pipeline scripts share (escalate.lua, spread.lua): request k
-- is due at start + k * interval, whatever the responses before it took. Loaded with dofile from the
-- bench directory (wrk's working directory).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- A wrk `delay` function for `rate` requests per second. Called before each request on a free
-- connection: it takes the next slot and waits for it (wrk's timers have 1 ms resolution, so a request
-- may go out up to 1 ms early; the slots, not the waits, set the rate). Behind schedule, it sends at
-- once until caught up.
return function(rate)
  local interval = 1000 / rate
  local next_slot = nil -- when the next request is due, in ms on the monotonic clock
  return function()
    local now = now_ms()
    local slot = next_slot or now
    next_slot = slot + interval
    if slot <= now then
      return 0
    end
    return math.floor(slot - now)
  end
end
