dofile("bench/common.lua")
-- wrk: POST /v1/subjects with a unique email per request (durable commits).
local counter = 0
request = function()
  counter = counter + 1
  return create_request(counter)
end
done = report
