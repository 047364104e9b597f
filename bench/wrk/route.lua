-- route.lua - wrk script: POST a real chat body, report the run as one JSON line.
--
-- Usage (the harness bench/run.sh builds these commands and prints them):
--   WRK_BODY=bench/bodies/1k.json wrk -t2 -c32 -d3s --latency -s bench/wrk/route.lua \
--       -H 'X-HPP-Task: code' http://127.0.0.1:PORT/v1/route
-- WRK_BODY    the body file to post (required). Several files separated by ':'
--             are posted in turn (one per request), at the price of a Lua call per
--             request; with one file the request is pre-built and wrk stays static.
-- Extra headers come from wrk's own -H flags.
--
-- At the end it prints one line "wrk-json: {...}" with the request count, rate,
-- errors by kind (status = non-2xx/3xx answers), latency percentiles in
-- microseconds and a 100-point latency CDF, which bench/report.py reads.
-- wrk is closed-loop: each connection waits for its answer before the next
-- request, so these latencies are service times under that concurrency, not
-- open-loop latencies at a fixed rate (the engine's C load generator does that).

local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then
        error("route.lua: cannot open body file " .. path .. ": " .. tostring(err))
    end
    local data = f:read("*a")
    f:close()
    return data
end

local spec = os.getenv("WRK_BODY")
if not spec or spec == "" then
    error("route.lua: set WRK_BODY to a body file (see the header of bench/wrk/route.lua)")
end

local bodies = {}
for path in string.gmatch(spec, "[^:]+") do
    bodies[#bodies + 1] = read_file(path)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = bodies[1]

if #bodies > 1 then
    local prebuilt = {}
    local next_body = 0
    function init(args)
        for i, b in ipairs(bodies) do
            prebuilt[i] = wrk.format("POST", nil, nil, b)
        end
    end
    function request()
        next_body = next_body % #prebuilt + 1
        return prebuilt[next_body]
    end
end

local function num(x)
    -- JSON has no inf/nan; wrk reports 0 for an empty histogram anyway.
    if x ~= x or x == math.huge or x == -math.huge then
        return "null"
    end
    return string.format("%.17g", x)
end

function done(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    local parts = {
        '"requests":' .. summary.requests,
        '"duration_us":' .. summary.duration,
        '"bytes":' .. summary.bytes,
        '"rps":' .. num(secs > 0 and summary.requests / secs or 0),
        string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
            e.connect, e.read, e.write, e.status, e.timeout),
    }
    local lat = {
        '"min":' .. num(latency.min), '"max":' .. num(latency.max),
        '"mean":' .. num(latency.mean), '"stdev":' .. num(latency.stdev),
    }
    for _, p in ipairs({50, 75, 90, 99, 99.9, 99.99}) do
        lat[#lat + 1] = string.format('"p%s":%s', tostring(p), num(latency:percentile(p)))
    end
    parts[#parts + 1] = '"latency_us":{' .. table.concat(lat, ",") .. "}"
    local cdf = {}
    for i = 1, 99 do
        cdf[#cdf + 1] = string.format("[%d,%s]", i, num(latency:percentile(i)))
    end
    for _, p in ipairs({99.5, 99.9, 99.99}) do
        cdf[#cdf + 1] = string.format("[%s,%s]", tostring(p), num(latency:percentile(p)))
    end
    cdf[#cdf + 1] = string.format("[100,%s]", num(latency.max))
    parts[#parts + 1] = '"cdf_us":[' .. table.concat(cdf, ",") .. "]"
    io.write("wrk-json: {" .. table.concat(parts, ",") .. "}\n")
end
