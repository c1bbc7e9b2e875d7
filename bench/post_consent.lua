dofile("bench/common.lua")
-- wrk: POST /v1/subjects/{id}/consents, a grant or a withdrawal for a random seeded subject
-- (durable commits).
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"purpose":"marketing.email","event":"%s","notice_version":"2026-01","method":"web_form"}',
    counter % 2 == 0 and "granted" or "withdrawn")
  return wrk.format("POST", "/v1/subjects/" .. random_id() .. "/consents",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
done = report
