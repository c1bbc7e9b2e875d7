dofile("bench/report.lua")
-- wrk: GET /v1/subjects/{id} for random seeded ids, bound to an activity.
local ids = {}
local key = os.getenv("GARDE_KEY")
for line in io.lines(os.getenv("GARDE_IDS")) do ids[#ids + 1] = line end
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/subjects/" .. id,
    { ["Authorization"] = "Bearer " .. key, ["X-Purpose"] = "customer_management" })
end
done = report
