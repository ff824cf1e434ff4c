-- One alert per request to Alertmanager's /api/v2/alerts over 1,000 label sets, so it dedups.
local n = 0
request = function()
  n = n + 1
  local body = string.format('[{"labels":{"alertname":"Bench","instance":"h%d","severity":"critical"},"annotations":{"summary":"bench"}}]', n % 1000)
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"]="application/json"}, body)
end
