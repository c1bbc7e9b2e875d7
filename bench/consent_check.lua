dofile("bench/report.lua")
-- wrk: GET /v1/consent/check for random seeded subjects.
local ids = {}
local key = os.getenv("GARDE_KEY")
for line in io.lines(os.getenv("GARDE_IDS")) do ids[#ids + 1] = line end
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/consent/check?subject=" .. id .. "&purpose=marketing.email&channel=email",
    { ["Authorization"] = "Bearer " .. key })
end
done = report
