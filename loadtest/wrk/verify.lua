-- POST {"code": ...} to /v1/verify, each request with the next code of a pool file (one code a
-- line, minted just before the run), and check every answer: a benchmark that measures denies
-- is wrong, so only a 200 with "decision":"accept" counts as ok; anything else is counted by
-- reason (or HTTP status) and reported.
--
--   wrk -t T -c C -d 10s -s loadtest/wrk/verify.lua http://127.0.0.1:PORT -- POOL TOKEN T [PATH]
--
-- T must repeat wrk's -t: thread i of T sends lines i, i+T, i+2T ... so no code is sent twice.
-- A thread that runs out of codes starts its list again (those answers are "replayed" denies)
-- and counts each restart in `exhausted`, so the harness can retry with a larger pool. (wrk calls
-- request() once before connecting, to check the script: thread 0's first code is never sent.)

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  local pool, token, step = args[1], args[2], tonumber(args[3] or "1")
  path = args[4] or "/v1/verify"
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
  codes, next_code = {}, 1
  local index = 0
  for line in io.lines(pool) do
    if index % step == id then codes[#codes + 1] = line end
    index = index + 1
  end
  assert(#codes > 0, "no codes for this thread in " .. pool)
end

function request()
  if next_code > #codes then
    next_code = 1
    exhausted = exhausted + 1
  end
  local code = codes[next_code]
  next_code = next_code + 1
  return wrk.format("POST", path, headers, '{"code":"' .. code .. '"}')
end

function response(status, headers, body)
  if status ~= 200 then
    note_unexpected("http_" .. status)
  elseif string.find(body, '"decision"%s*:%s*"accept"') then
    ok = ok + 1
  else
    note_unexpected(string.match(body, '"reason"%s*:%s*"([%w_%-]+)"') or "unparsed")
  end
end
