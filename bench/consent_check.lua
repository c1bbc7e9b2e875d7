-- wrk: GET /v1/consent/check for random seeded subjects.
local ids = {}
local key = os.getenv("GARDE_KEY")
for line in io.lines(os.getenv("GARDE_IDS")) do ids[#ids + 1] = line end
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/consent/check?subject=" .. id .. "&purpose=marketing.email&channel=email",
    { ["Authorization"] = "Bearer " .. key })
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
