-- Shared by the wrk scripts: the API key, the seeded subject ids, and one machine-readable
-- RESULT line per run.
key = os.getenv("GARDE_KEY")
ids = {}
for line in io.lines(os.getenv("GARDE_IDS")) do ids[#ids + 1] = line end

function random_id() return ids[math.random(#ids)] end

-- Each wrk thread gets its own tag (thread number and start time), so that the e-mail
-- addresses of creates are unique across threads and runs.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tag", tostring(threads) .. "-" .. tostring(os.time()))
end

-- POST /v1/subjects/{id}/consents for a random seeded subject: a grant for even `n`, a withdrawal
-- for odd (a durable commit); only the one GARDE_CONSENT_EVENT names (granted, withdrawn), if set.
local only_event = os.getenv("GARDE_CONSENT_EVENT")
function consent_request(n)
  local body = string.format(
    '{"purpose":"marketing.email","event":"%s","notice_version":"2026-01","method":"web_form"}',
    only_event or (n % 2 == 0 and "granted" or "withdrawn"))
  return wrk.format("POST", "/v1/subjects/" .. random_id() .. "/consents",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end

-- POST /v1/subjects of a new person, the `n`th of this thread (a durable commit).
function create_request(n)
  local body = string.format('{"kind":"person","source":"bench","fields":' ..
    '{"email":"w%s-%d@bench.example","first_name":"Ana","postal_code":"75011"}}', tag, n)
  return wrk.format("POST", "/v1/subjects",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end

function report(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
