-- wrk script for bench/scale.ts: sip-inbound calls as in sip-inbound.lua, but each dials one of
-- the numbers bench/scale.ts loaded (+14152000000 onwards; how many is the script's argument:
-- wrk ... -s bench/sip-inbound-scale.lua URL -- 100000), so calls spread over the whole
-- directory, its tenants and campaigns. Callers are drawn from 10,000 numbers.
local sent = 0
local numbers = 100000
pending = 0 -- global: done() reads it from each thread
local threads = {}
function setup(thread)
  thread:set("worker", #threads)
  table.insert(threads, thread)
end
function init(args)
  -- wrk hands the script its arguments (after the URL, and possibly the "--" before them).
  for _, arg in pairs(args) do
    if tonumber(arg) then numbers = tonumber(arg) end
  end
  math.randomseed(os.time() * 1000 + worker)
end
function request()
  sent = sent + 1
  local caller = string.format("+1212%07d", math.random(0, 9999))
  local dialed = string.format("+14152%06d", math.random(0, numbers - 1))
  local body = string.format(
    '{"call_id":"bench-scale-%d-%d-%d","trunk_id":"ST_bench","from_number":"%s","to_number":"%s","room_name":"call-bench-scale-%d-%d"}',
    worker, sent, math.random(0, 1e9), caller, dialed, worker, sent)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

-- Answers whose record went to the journal (the database was slower than CALL_RECORD_WAIT_MS).
function response(status, headers, body)
  if body and body:find('"record":"pending"', 1, true) then pending = pending + 1 end
end
function done()
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("pending") end
  io.write(string.format("pending answers: %d\n", total))
end
