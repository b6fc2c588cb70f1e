-- _log.lua: prelude for the scripts that read or trim the event log (see _change.lua's emit_event).

-- A stream entry id "ms-seq" as two numbers (both exact in a Lua double).
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- -1, 0 or 1 as stream id a is before, equal to or after b.
local function compare_ids(a, b)
  local a_ms, a_seq = parse_id(a)
  local b_ms, b_seq = parse_id(b)
  if a_ms ~= b_ms then return a_ms < b_ms and -1 or 1 end
  if a_seq ~= b_seq then return a_seq < b_seq and -1 or 1 end
  return 0
end

-- One field of an entry's flat field list (the fields emit_event writes first are found first).
local function entry_field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

-- "a,b,c" -> {a = true, b = true, c = true}; "" -> nil (no filter).
local function set_of(csv)
  if csv == '' then return nil end
  local set = {}
  for item in string.gmatch(csv, '[^,]+') do set[item] = true end
  return set
end

