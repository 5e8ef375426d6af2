-- wrk script: one sip-inbound call per request, each with a call_id of its own, callers drawn
-- from 10,000 numbers (so leads are both created and found), all to the campaign number of
-- examples/directory.json.
local sent = 0
pending = 0 -- global: done() reads it from each thread
local threads = {}
function setup(thread)
  thread:set("worker", #threads)
  table.insert(threads, thread)
end
function init()
  math.randomseed(os.time() * 1000 + worker)
end
function request()
  sent = sent + 1
  local caller = string.format("+1212%07d", math.random(0, 9999))
  local body = string.format(
    '{"call_id":"bench-%d-%d-%d","trunk_id":"ST_bench","from_number":"%s","to_number":"+14155550100","room_name":"call-bench-%d-%d"}',
    worker, sent, math.random(0, 1e9), caller, worker, sent)
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
