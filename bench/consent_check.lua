-- wrk: GET /v1/consent/check for random seeded subjects.
dofile("bench/common.lua")
request = function()
  return wrk.format("GET",
    "/v1/consent/check?subject=" .. random_id() .. "&purpose=marketing.email&channel=email",
    { ["Authorization"] = "Bearer " .. key })
end
done = report
