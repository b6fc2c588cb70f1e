-- wrk script for the webhook benchmark: PATCHes on a fixed schedule of RATE per second (open loop, as
-- escalate.lua), spread round-robin over AGENTS agents (agt_w0 …) with SESSIONS sessions each
-- (ase_0 …), every PATCH a real change (seq), one in ESCALATE_EVERY escalating (priority becomes urgent;
-- the session's previous PATCH set it to high). Run with one wrk thread (-t1).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local key = os.getenv("API_KEY")
local interval = 1000 / tonumber(os.getenv("RATE") or "1000")
local every = tonumber(os.getenv("ESCALATE_EVERY") or "10")
local agents = tonumber(os.getenv("AGENTS") or "10")
local sessions = tonumber(os.getenv("SESSIONS") or "47")  -- coprime with ESCALATE_EVERY: see request()
local counter = 0
local next_slot = nil
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

delay = function()
  local now = now_ms()
  local slot = next_slot or now
  next_slot = slot + interval
  if slot <= now then
    return 0
  end
  return math.floor(slot - now)
end
