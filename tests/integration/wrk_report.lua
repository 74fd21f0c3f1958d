-- wrk script for tests/integration/test_reliability.py: counts every
-- response whose status is not 2xx (wrk's own "Non-2xx or 3xx" line lets
-- 3xx through) and prints one machine-readable line at the end:
--   strata-report non2xx=N responses=N codes=503:2,502:1
--   wrk -s tests/integration/wrk_report.lua URL
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

non2xx, responses, codes = 0, 0, {}

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local bad, total, all = 0, 0, {}
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    total = total + t:get("responses")
    for code, n in pairs(t:get("codes") or {}) do
      all[code] = (all[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(all) do
    table.insert(parts, code .. ":" .. n)
  end
  io.write(string.format("strata-report non2xx=%d responses=%d codes=%s\n", bad, total,
                         table.concat(parts, ",")))
end
