-- wrk: POST /v1/subjects with a unique email per request (durable commits).
local key = os.getenv("GARDE_KEY")
local counter = 0
local thread_tag = 0
setup = function(thread)
  thread_tag = thread_tag + 1
  thread:set("tag", tostring(thread_tag) .. "-" .. tostring(os.time()))
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"kind":"person","source":"bench","fields":{"email":"w%s-%d@bench.example","first_name":"Ana","postal_code":"75011"}}',
    tag, counter)
  return wrk.format("POST", "/v1/subjects",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
