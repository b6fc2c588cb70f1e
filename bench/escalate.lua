-- wrk script for the pipeline benchmark: every PATCH escalates (escalation_level changes every time), and
-- each connection paces itself so that all connections together send about RATE requests per second.
-- Environment: API_KEY, RATE (total requests/s), CONNECTIONS (wrk -c).
local key = os.getenv("API_KEY")
local pause = 1000 * tonumber(os.getenv("CONNECTIONS") or "10") / tonumber(os.getenv("RATE") or "1000")
local counter = 0
local headers = {["Content-Type"] = "application/json", ["x-api-key"] = key}

request = function()
  counter = counter + 1
  local body = '{"metadata":{"priority":"urgent","escalation_level":"bench_' .. counter .. '"}}'
  return wrk.format("PATCH", nil, headers, body)
end

delay = function()
  return pause
end
