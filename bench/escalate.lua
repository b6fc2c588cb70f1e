-- wrk script for the pipeline benchmark: PATCHes sent on a fixed schedule of RATE requests per second
-- (open loop: request k is due at start + k / RATE, whatever the responses before it took), every PATCH
-- a real change (seq), and one in ESCALATE_EVERY changing metadata.escalation_level, which escalates (a
-- webhook the receiver timestamps). A server that cannot keep up falls behind the schedule: the
-- connections are all busy, requests go out late, and the rate wrk reports falls below RATE.
-- Environment: API_KEY, RATE (total requests/s), ESCALATE_EVERY. Run with one wrk thread (-t1): the
-- schedule lives in the thread's Lua state.
local key = os.getenv("API_KEY")
local every = tonumber(os.getenv("ESCALATE_EVERY") or "10")
local counter = 0
local headers = {["Content-Type"] = "application/json", ["x-api-key"] = key}

request = function()
  counter = counter + 1
  local level = "bench_" .. math.floor(counter / every)
  local body = '{"metadata":{"priority":"urgent","escalation_level":"' .. level .. '","seq":' .. counter .. '}}'
  return wrk.format("PATCH", nil, headers, body)
end

delay = dofile("schedule.lua")(tonumber(os.getenv("RATE") or "1000"))
