dofile("bench/common.lua")
-- wrk: POST /v1/subjects with a unique email per request (durable commits).
local counter = 0
local thread_tag = 0
setup = function(thread)
  thread_tag = thread_tag + 1
  thread:set("tag", tostring(thread_tag) .. "-" .. tostring(os.time()))
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"kind":"person","source":"bench","fields":{"email":"w%s-%d@bench.example","first_name":"Ana","postal_code":"75011"}}',
    tag, counter)
  return wrk.format("POST", "/v1/subjects",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
done = report
