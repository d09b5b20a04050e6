-- wrk script used by every wrk run of the bench suite.
-- Arguments (after --): [pipeline N]. With "pipeline 16" every write
-- carries 16 GET requests (HTTP/1.1 pipelining); otherwise one request.
-- done() prints one JSON line (prefixed BENCHJSON) with the counts and
-- latency percentiles, which bench.py parses.
local depth = 1

init = function(args)
  if args[1] == "pipeline" then
    depth = tonumber(args[2]) or 16
  end
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format("GET", "/")
  end
  req = table.concat(r)
end

request = function()
  return req
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_p50_us":%.1f,"lat_p99_us":%.1f,"lat_mean_us":%.1f,"lat_max_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
