-- Counts the responses of each worker by their X-Worker header and prints the counts as one JSON
-- line. The response() hook costs wrk time per response, so the balance runs use this script and
-- the throughput runs do not.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
end

function response(status, headers, body)
  local w = headers["X-Worker"]
  if w then counts[w] = (counts[w] or 0) + 1 end
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for w, n in pairs(t:get("counts")) do total[w] = (total[w] or 0) + n end
  end
  local parts = {}
  for w, n in pairs(total) do table.insert(parts, string.format('"%s":%d', w, n)) end
  io.write('{"workers":{' .. table.concat(parts, ',') .. '},"requests":' .. summary.requests .. '}\n')
end
