-- One PagerDuty Events v2 trigger per request over 1,000 dedup keys (the same work as
-- alertmanager.lua: 1,000 distinct alerts, each request folding into one of them).
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"routing_key":"0123456789abcdef0123456789abcdef","event_action":"trigger","dedup_key":"h%d","payload":{"summary":"bench","source":"h%d","severity":"critical"}}', n % 1000, n % 1000)
  return wrk.format("POST", "/v2/enqueue", {["Content-Type"]="application/json"}, body)
end
