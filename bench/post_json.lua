-- wrk script for bench/api.sh: POST the same JSON body on every request.
--   wrk -s bench/post_json.lua http://127.0.0.1:PORT/api/orders -- BODY
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = args[1] or error("post_json.lua: pass the body after --")
end
