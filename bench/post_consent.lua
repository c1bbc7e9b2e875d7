dofile("bench/common.lua")
-- wrk: POST /v1/subjects/{id}/consents, a grant or a withdrawal for a random seeded subject
-- (durable commits).
local counter = 0
request = function()
  counter = counter + 1
  return consent_request(counter)
end
done = report
