-- wrk: PATCH /v1/subjects/{id} of a random seeded subject, a new postal code and first name
-- each time (a durable commit; the look-up digests of both replaced).
dofile("bench/common.lua")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"fields":{"postal_code":"%05d","first_name":"Name%d"}}',
    counter % 100000, counter % 977)
  return wrk.format("PATCH", "/v1/subjects/" .. random_id(),
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
done = report
