-- wrk script for bench/api.sh: GET /api/users/<id> walking the ids in a
-- file (one per line, written when the users were seeded) round-robin, so
-- that consecutive requests ask for different users.
--   wrk -s bench/users_walk.lua http://127.0.0.1:PORT -- IDS_FILE
local threads = 0
function setup(thread) -- main state: spread the threads over the list
  thread:set("start", threads * 7919)
  threads = threads + 1
end

local reqs, n, i = {}, 0, 0
function init(args)
  local path = args[1] or error("users_walk.lua: pass the ids file after --")
  for id in io.lines(path) do
    if id ~= "" then
      n = n + 1
      reqs[n] = wrk.format("GET", "/api/users/" .. id)
    end
  end
  if n == 0 then error("users_walk.lua: no ids in " .. path) end
  i = (start or 0) % n
end

function request()
  i = i % n + 1
  return reqs[i]
end
