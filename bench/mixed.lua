-- wrk: a day's mix on one vault — consent checks (65 %), subject reads (25 %), consent events
-- (9 %, durable) and creates (1 %, durable) — for memory under sustained load (bench/rss.sh).
dofile("bench/common.lua")
local counter = 0
request = function()
  counter = counter + 1
  local auth = "Bearer " .. key
  local pick = math.random(100)
  if pick <= 65 then
    return wrk.format("GET", "/v1/consent/check?subject=" .. random_id() ..
      "&purpose=marketing.email&channel=email", { ["Authorization"] = auth })
  elseif pick <= 90 then
    return wrk.format("GET", "/v1/subjects/" .. random_id(),
      { ["Authorization"] = auth, ["X-Purpose"] = "customer_management" })
  elseif pick <= 99 then
    return consent_request(counter)
  end
  return create_request(counter)
end
done = report
