-- wrk script for the pipeline benchmark: PATCHes sent on a fixed schedule of RATE requests per second
-- (open loop: request k is due at start + k / RATE, whatever the responses before it took), every PATCH
-- a real change (seq), and one in ESCALATE_EVERY changing metadata.escalation_level, which escalates (a
-- webhook the receiver timestamps). A server that cannot keep up falls behind the schedule: the
-- connections are all busy, requests go out late, and the rate wrk reports falls below RATE.
-- Environment: API_KEY, RATE (total requests/s), ESCALATE_EVERY. Run with one wrk thread (-t1): the
-- schedule lives in the thread's Lua state.
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

local key = os.getenv("API_KEY")
local interval = 1000 / tonumber(os.getenv("RATE") or "1000")
local every = tonumber(os.getenv("ESCALATE_EVERY") or "10")
local counter = 0
local next_slot = nil -- when the next request is due, in ms on the monotonic clock
local headers = {["Content-Type"] = "application/json", ["x-api-key"] = key}

request = function()
  counter = counter + 1
  local level = "bench_" .. math.floor(counter / every)
  local body = '{"metadata":{"priority":"urgent","escalation_level":"' .. level .. '","seq":' .. counter .. '}}'
  return wrk.format("PATCH", nil, headers, body)
end

-- Called before each request on a free connection: it takes the next slot of the schedule and waits
-- for it (wrk's timers have 1 ms resolution, so a request may go out up to 1 ms early; the slots, not
-- the waits, set the rate). Behind schedule, it sends at once until caught up.
delay = function()
  local now = now_ms()
  local slot = next_slot or now
  next_slot = slot + interval
  if slot <= now then
    return 0
  end
  return math.floor(slot - now)
end
