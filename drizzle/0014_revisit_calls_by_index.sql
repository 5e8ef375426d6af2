-- revisit_calls: the statement that reads calls recorded before (a repeated delivery, or LiveKit's
-- join of a call the decision endpoint recorded) and records the join on them, moved from
-- src/calls/recorder.ts into a function. As a statement of its own it found the calls by joining
-- the batch to call_logs (IN, and UPDATE ... FROM). The planner takes the batch for a hundred rows
-- (jsonb_to_recordset's estimate), and for a hundred calls a hash join over a sequential scan of
-- call_logs is cheaper than a hundred index lookups until the table holds tens of thousands of
-- rows: at 10,000 calls each revisit read all 193 pages of the table twice (443 pages, 12 ms), and
-- the plan stays cached for the connection until the next ANALYZE. Batches are a few calls. Now
-- each table access names its calls as an array (= ANY (ARRAY(...))), which can only be an index
-- condition on the key or a filter, and the function runs with record_calls' settings (0013), so
-- that the filter never rides on a sequential scan or on a walk through a whole index.
-- The statement is otherwise unchanged: the join recorded (first values win), the dispatch claimed
-- when asked and free (no agent dispatched, the call goes on, no other claim within claim_hold_ms);
-- a claim taken here shows as dispatch_claimed_at = now().
CREATE OR REPLACE FUNCTION revisit_calls(calls jsonb)
RETURNS TABLE (call_id text, call_log_id uuid, lead_id uuid, tenant_id uuid, campaign_id uuid, phone_number_id uuid,
               agent_name text, agent_source text, from_number text, to_number text,
               outcome text, outcome_reason text, transfer_to text, caller jsonb,
               dispatch_claimed boolean, dispatch_attempts integer, dispatched boolean, ended boolean)
LANGUAGE plpgsql
-- As record_calls (0013): every access here is by key. Without these, a plan made while call_logs
-- is small (and cached for the connection) may read all of it: the table, or the whole of an index.
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH x AS (
    SELECT * FROM jsonb_to_recordset(calls)
      AS x(call_id text, room_name text, room_sid text, caller_joined_at timestamptz, claim_dispatch boolean, claim_hold_ms int)
  ), locked AS (
    -- Rows locked in call id order, as record_calls writes them, so two batches never wait in a cycle.
    SELECT c.id FROM call_logs c
    WHERE c.provider_call_id = ANY (ARRAY(SELECT x.call_id FROM x WHERE x.caller_joined_at IS NOT NULL))
    ORDER BY c.provider_call_id
    FOR UPDATE
  ), joined AS (
    -- The claim is decided on the row as locked (its latest version), never on an older read.
    UPDATE call_logs c
    SET caller_joined_at = coalesce(c.caller_joined_at, x.caller_joined_at),
        room_name = coalesce(c.room_name, nullif(x.room_name, '')),
        room_sid = coalesce(c.room_sid, x.room_sid),
        (dispatch_claimed_at, dispatch_attempts) = (
          SELECT CASE WHEN claim.taken THEN now() ELSE c.dispatch_claimed_at END, c.dispatch_attempts + claim.taken::int
          -- Unknown (no claim asked for, no hold given) is no claim.
          FROM (SELECT coalesce(x.claim_dispatch AND c.dispatch_id IS NULL AND c.ended_at IS NULL
                                AND (c.dispatch_claimed_at IS NULL
                                     OR c.dispatch_claimed_at < now() - make_interval(secs => x.claim_hold_ms / 1000.0)),
                                false) AS taken) claim),
        updated_at = now()
    FROM x
    WHERE c.provider_call_id = ANY (ARRAY(SELECT x.call_id FROM x WHERE x.caller_joined_at IS NOT NULL))
      AND c.id = ANY (ARRAY(SELECT locked.id FROM locked))
      AND c.provider_call_id = x.call_id AND x.caller_joined_at IS NOT NULL
    RETURNING c.*
  ), stored AS (
    SELECT * FROM joined
    UNION ALL
    SELECT * FROM call_logs cl
    WHERE cl.provider_call_id = ANY (ARRAY(SELECT x.call_id FROM x WHERE x.caller_joined_at IS NULL))
      AND cl.provider_call_id NOT IN (SELECT j.provider_call_id FROM joined j)
  )
  SELECT s.provider_call_id, s.id, s.lead_id, s.tenant_id, s.campaign_id, s.phone_number_id,
         s.agent_name, s.agent_source, s.from_number, s.to_number, s.outcome, s.outcome_reason, s.transfer_to,
         s.metadata->'caller', s.dispatch_claimed_at = now(),
         s.dispatch_attempts, s.dispatch_id IS NOT NULL, s.ended_at IS NOT NULL
  FROM stored s;
END
$$;
