-- wrk script of benches/load.sh: POSTs the AdmissionReviews of the file
-- named by $WRK_BODIES (one JSON document per line) in rotation. In each
-- body, @S@ becomes a fresh 5-character pod-name suffix and @R@/@P@ fresh
-- request and pod uids, so no two requests of a run describe the same pod
-- (benches/gen_reviews.py --placeholders writes such bodies). A file of
-- one body without placeholders repeats that body.

local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local alphabet = "bcdfghjklmnpqrstvwxz2456789"
local bodies = {}
local n, i, c = 0, 0, 0

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local path = os.getenv("WRK_BODIES")
  for line in io.lines(path) do
    -- Split once into literals and placeholder keys.
    local parts, pos = {}, 1
    while true do
      local s, e, key = string.find(line, "@([SRP])@", pos)
      if not s then break end
      parts[#parts + 1] = string.sub(line, pos, s - 1)
      parts[#parts + 1] = key
      pos = e + 1
    end
    parts[#parts + 1] = string.sub(line, pos)
    n = n + 1
    bodies[n] = parts
  end
  -- Threads start at different places in the rotation.
  i = ((tid or 0) * 7919) % n
end

-- Five characters, unique for ids below 27^5, spread like generated names.
local function suffix(id)
  id = (id * 2654435761) % 14348907
  local out = {}
  for k = 1, 5 do
    local d = id % 27
    out[k] = string.sub(alphabet, d + 1, d + 1)
    id = (id - d) / 27
  end
  return table.concat(out)
end

function request()
  i = i % n + 1
  c = c + 1
  local parts = bodies[i]
  if #parts == 1 then
    return wrk.format(nil, nil, nil, parts[1])
  end
  local t = tid or 0
  local vals = {
    S = suffix(c * 8 + t),
    R = string.format("0000%04x-0000-4000-8000-%012x", t, c),
    P = string.format("1111%04x-0000-4000-8000-%012x", t, c),
  }
  local buf = {}
  for k = 1, #parts do
    if k % 2 == 0 then buf[k] = vals[parts[k]] else buf[k] = parts[k] end
  end
  return wrk.format(nil, nil, nil, table.concat(buf))
end
