-- wrk script for the webhook benchmark: PATCHes on a fixed schedule of RATE per second (open loop, as
-- escalate.lua), spread round-robin over AGENTS agents (agt_w0 …) with SESSIONS sessions each
-- (ase_0 …), every PATCH a real change (seq), one in ESCALATE_EVERY escalating (priority becomes urgent;
-- the session's previous PATCH set it to high). Run with one wrk thread (-t1).
local key = os.getenv("API_KEY")
local every = tonumber(os.getenv("ESCALATE_EVERY") or "10")
local agents = tonumber(os.getenv("AGENTS") or "10")
local sessions = tonumber(os.getenv("SESSIONS") or "47")  -- coprime with ESCALATE_EVERY: see request()
local counter = 0
local headers = {["Content-Type"] = "application/json", ["x-api-key"] = key}

request = function()
  counter = counter + 1
  local agent = counter % agents
  local round = math.floor(counter / agents)
  local session = round % sessions
  -- One round in ESCALATE_EVERY is urgent; a session's previous PATCH was SESSIONS rounds earlier, in
  -- another residue (SESSIONS coprime with ESCALATE_EVERY), so each urgent PATCH is a new escalation.
  local priority = "high"
  if round % every == 0 then priority = "urgent" end
  local path = "/v2/agents/agt_w" .. agent .. "/sessions/ase_" .. session
  local body = '{"metadata":{"priority":"' .. priority .. '","seq":' .. counter .. '}}'
  return wrk.format("PATCH", path, headers, body)
end

delay = dofile("schedule.lua")(tonumber(os.getenv("RATE") or "1000"))
