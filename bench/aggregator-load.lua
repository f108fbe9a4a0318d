-- SPDX-License-Identifier: MIT
-- wrk script: POST valid agent reports (docs/report-format.md, the shape
-- agent/report.c sends) to nodetrust-aggregator, cycling through node
-- names node-00000 .. node-NNNNN, each report listing the same registries.
--
--   AGG_TOKEN=... AGG_NODES=10000 AGG_REGISTRIES=20 \
--     wrk -t1 -c8 -d10s -s bench/aggregator-load.lua http://127.0.0.1:PORT
--
-- AGG_MODE=get turns it into a reader instead: GET AGG_PATH, at most
-- AGG_COUNT answers per thread (then the thread stops; use -c1 for an exact
-- count), AGG_DELAY_MS between requests (the summary probe under load).
--
-- Every thread starts at its own offset (AGG_START + thread index * nodes
-- / threads) so two threads do not post the same node at the same moment.
-- Only 200 answers count as accepted: wrk prints "Non-2xx or 3xx
-- responses" for the others, and done() prints one line the driver reads.

local token = os.getenv("AGG_TOKEN") or "bench-token-0123456789"
local nodes = tonumber(os.getenv("AGG_NODES") or "10000")
local n_registries = tonumber(os.getenv("AGG_REGISTRIES") or "20")
local start = tonumber(os.getenv("AGG_START") or "0")
local mode = os.getenv("AGG_MODE") or "post"
local get_path = os.getenv("AGG_PATH") or "/api/v1/summary"
local get_count = tonumber(os.getenv("AGG_COUNT") or "0")
local delay_ms = tonumber(os.getenv("AGG_DELAY_MS") or "0")
local hash = string.rep("ab", 32)
local threads = {}
local thread_index = 0

-- The body around the node name: built once, the name spliced in per request.
local function registries()
  local out = {}
  for i = 1, n_registries do
    local name = string.format("reg-%02d.example.com:5000", i)
    out[#out + 1] = string.format(
      '{"name":"%s","key":"reg-%02d.example.com..5000","state":"applied",' ..
      '"fingerprint":"%s","not_after":%d,"verification":{"state":"verified",' ..
      '"server_not_after":%d,"checked_at":1795000000}}',
      name, i, string.format("%064x", i), 1830000000 + i * 86400, 1820000000 + i * 86400)
  end
  return table.concat(out, ",")
end

local head = '{"schema":1,"node":"'
local tail = '","agent_version":"0.1.0","timestamp":1795000000,"interval_seconds":3600,' ..
  '"ready":true,"source":{"kind":"dir","generation":7,"hash":"' .. hash .. '"},' ..
  '"applied_hash":"' .. hash .. '","errors":[],"registries":[' .. registries() .. '],' ..
  '"soonest_expiry":1830086400,"pull_secret":{"state":"absent","hash":null},' ..
  '"targets":{"docker":{"state":"active"},"containers":{"state":"active"},' ..
  '"containerd":{"state":"active"}},"registry_counts":{"applied":' .. n_registries ..
  ',"refused":0,"conflict":0,"failed":0,"shadowed":0,"ignored":0}}'
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. token,
}

function setup(thread)
  thread:set("thread_index", thread_index)
  thread_index = thread_index + 1
  threads[#threads + 1] = thread
end

local counter

function init(args)
  counter = (start + (thread_index or 0) * math.floor(nodes / 8)) % nodes
end

local answers = 0

if mode == "get" then
  if delay_ms > 0 then
    function delay() return delay_ms end
  end
  if get_count > 0 then
    function response(status, hdrs, body)
      answers = answers + 1
      if answers >= get_count then wrk.thread:stop() end
    end
  end
end

function request()
  if mode == "get" then
    return wrk.format("GET", get_path)
  end
  counter = (counter + 1) % nodes
  return wrk.format("POST", "/api/v1/reports", headers,
                    head .. string.format("node-%05d", counter) .. tail)
end

function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout
  io.write(string.format("LOAD requests=%d errors=%d seconds=%.3f p50_us=%d p99_us=%d\n",
    summary.requests, bad, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99)))
end
