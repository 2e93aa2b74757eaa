-- Shared by verify.lua and request.lua: thread numbering, answer counters, and done(), which
-- prints one line "BENCH_JSON {...}" (counts, errors, latency percentiles in microseconds) for
-- loadtest.bench_http to parse. Loaded with dofile() from the script's own folder.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- Per thread: what came back. `reasons_text` is rebuilt only when something unexpected arrives.
ok, unexpected, exhausted, reasons, reasons_text = 0, 0, 0, {}, ""

function note_unexpected(key)
  unexpected = unexpected + 1
  reasons[key] = (reasons[key] or 0) + 1
  local parts = {}
  for name, count in pairs(reasons) do
    parts[#parts + 1] = string.format('"%s":%d', name, count)
  end
  reasons_text = table.concat(parts, ",")
end

function done(summary, latency, requests)
  local total = {ok = 0, unexpected = 0, exhausted = 0}
  local parts = {}
  for _, thread in ipairs(threads) do
    total.ok = total.ok + thread:get("ok")
    total.unexpected = total.unexpected + thread:get("unexpected")
    total.exhausted = total.exhausted + thread:get("exhausted")
    local text = thread:get("reasons_text")
    if text ~= "" then parts[#parts + 1] = text end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"ok":%d,"unexpected":%d,"exhausted":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"max":%.1f},"reasons":[{%s}]}\n',
    summary.duration, summary.requests, total.ok, total.unexpected, total.exhausted,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, "},{")))
end
