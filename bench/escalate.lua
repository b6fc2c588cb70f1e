-- wrk script for the pipeline benchmark: PATCHes paced so that all connections together send about
-- RATE requests per second; every PATCH is a real change (seq), and one in ESCALATE_EVERY changes
-- metadata.escalation_level, which escalates (a webhook the receiver timestamps).
-- Environment: API_KEY, RATE (total requests/s), CONNECTIONS (wrk -c), ESCALATE_EVERY.
local key = os.getenv("API_KEY")
local pause = 1000 * tonumber(os.getenv("CONNECTIONS") or "10") / tonumber(os.getenv("RATE") or "1000")
local every = tonumber(os.getenv("ESCALATE_EVERY") or "10")
local counter = 0
local headers = {["Content-Type"] = "application/json", ["x-api-key"] = key}

request = function()
  counter = counter + 1
  local level = "bench_" .. math.floor(counter / every)
  local body = '{"metadata":{"priority":"urgent","escalation_level":"' .. level .. '","seq":' .. counter .. '}}'
  return wrk.format("PATCH", nil, headers, body)
end

delay = function()
  return pause
end
