dofile("bench/common.lua")
-- wrk: POST /v1/subjects of a new person with a first name only: no blind-index digest and no
-- match key, so no insert at a random place in an index. Beside bench/post_subject.lua (an
-- e-mail, whose look-up and suppression digests land at random places, and a postal code), it
-- shows what a create's index entries cost (docs/benchmarks.md).
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"kind":"person","source":"bench","fields":{"first_name":"Ana%s-%d"}}', tag, counter)
  return wrk.format("POST", "/v1/subjects",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
done = report
