-- Shared by the wrk scripts: the API key, the seeded subject ids, and one machine-readable
-- RESULT line per run.
key = os.getenv("GARDE_KEY")
ids = {}
for line in io.lines(os.getenv("GARDE_IDS")) do ids[#ids + 1] = line end

function random_id() return ids[math.random(#ids)] end

function report(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
