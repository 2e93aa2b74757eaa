-- The same request over and over (e.g. POST /v1/me/code or GET /v1/me/code.png with a citizen's
-- app token); ok only when the status is the expected one, anything else counted by status.
--
--   wrk -t T -c C -d 10s -s loadtest/wrk/request.lua http://127.0.0.1:PORT -- METHOD PATH TOKEN STATUS

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  expected = tonumber(args[4] or "200")
  local headers = {["Authorization"] = "Bearer " .. args[3]}
  static = wrk.format(args[1], args[2], headers, nil)
end

function request()
  return static
end

function response(status, headers, body)
  if status == expected then
    ok = ok + 1
  else
    note_unexpected("http_" .. status)
  end
end
