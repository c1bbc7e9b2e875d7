-- wrk: GET /v1/subjects/{id} for random seeded ids, bound to an activity.
dofile("bench/common.lua")
request = function()
  return wrk.format("GET", "/v1/subjects/" .. random_id(),
    { ["Authorization"] = "Bearer " .. key, ["X-Purpose"] = "customer_management" })
end
done = report
