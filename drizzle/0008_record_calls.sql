-- Records a batch of inbound calls in one statement: each caller's lead upserted (when the caller
-- and the tenant are known), each call log inserted. src/calls/recorder.ts batches concurrent calls
-- into one call of this function. It is a function so that each connection parses and plans the
-- statement once rather than once per batch: on the embedded database planning it cost more than
-- the writing. A change to the statement is a new migration (CREATE OR REPLACE FUNCTION).
--
-- `calls` is a JSON array of objects with the fields of input below; `ord` is the position in the batch.
-- A call first seen as a LiveKit caller join also carries when the caller joined and whether to take
-- the right to dispatch its agent (call_logs.dispatch_claimed_at), so the join costs no second statement.
-- The unique keys make concurrent calls from one caller meet on one lead, and deliveries of one
-- call id, in this batch or another process's, meet on one call log. A tenant, campaign or number
-- deleted since the decision is left out rather than failing the record. A lead only moves back to
-- "calling" for a call newer than its last one. Leads and call logs are written in key order, so two
-- batches never wait on each other in a cycle. Returns the call logs inserted; a call id recorded
-- before (or twice in the batch) has no row here.
CREATE FUNCTION record_calls(calls jsonb)
RETURNS TABLE (call_id text, call_log_id uuid, lead_id uuid, tenant_id uuid, campaign_id uuid, phone_number_id uuid,
               agent_name text, agent_source text, from_number text, to_number text, dispatch_claimed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT * FROM jsonb_to_recordset(calls) AS x(
      ord int, call_id text, room_name text, room_sid text, trunk_id text, from_number text, from_raw text,
      to_number text, to_raw text, tenant_id uuid, campaign_id uuid, phone_number_id uuid,
      agent_name text, agent_source text, metadata jsonb, created_at timestamptz,
      caller_joined_at timestamptz, claim_dispatch boolean)
  ), fresh AS (
    SELECT DISTINCT ON (x.call_id) x.*, t.id AS known_tenant, c.id AS known_campaign, pn.id AS known_number
    FROM input x
    LEFT JOIN tenants t ON t.id = x.tenant_id
    LEFT JOIN campaigns c ON c.id = x.campaign_id AND c.tenant_id = t.id
    LEFT JOIN phone_numbers pn ON pn.id = x.phone_number_id AND t.id IS NOT NULL
    WHERE NOT EXISTS (SELECT 1 FROM call_logs cl WHERE cl.provider_call_id = x.call_id)
    ORDER BY x.call_id, x.ord
  ), callers AS (
    -- One row per lead: a statement's ON CONFLICT may not update a row twice.
    SELECT f.known_tenant, f.known_campaign, f.from_number, max(f.created_at) AS last_call_at
    FROM fresh f WHERE f.known_tenant IS NOT NULL AND f.from_number IS NOT NULL
    GROUP BY f.known_tenant, f.known_campaign, f.from_number
  ), lead AS (
    INSERT INTO leads AS l (tenant_id, campaign_id, phone_number, name, status, last_call_at)
    SELECT k.known_tenant, k.known_campaign, k.from_number, 'Inbound Caller ' || k.from_number, 'calling', k.last_call_at
    FROM callers k ORDER BY k.known_tenant, k.known_campaign, k.from_number
    ON CONFLICT (tenant_id, campaign_id, phone_number)
    DO UPDATE SET status = CASE WHEN excluded.last_call_at >= l.last_call_at THEN 'calling' ELSE l.status END,
                  last_call_at = greatest(l.last_call_at, excluded.last_call_at), updated_at = now()
    RETURNING l.id, l.tenant_id, l.campaign_id, l.phone_number
  )
  INSERT INTO call_logs AS cl (provider_call_id, room_name, room_sid, trunk_id, from_number, from_raw, to_number, to_raw,
                               tenant_id, campaign_id, lead_id, phone_number_id, agent_name, agent_source, metadata, created_at,
                               caller_joined_at, dispatch_claimed_at, dispatch_attempts)
  SELECT f.call_id, f.room_name, f.room_sid, f.trunk_id, f.from_number, f.from_raw, f.to_number, f.to_raw,
         f.known_tenant, f.known_campaign, ld.id, f.known_number, f.agent_name, f.agent_source, f.metadata, f.created_at,
         f.caller_joined_at, CASE WHEN f.claim_dispatch THEN now() END, CASE WHEN f.claim_dispatch THEN 1 ELSE 0 END
  FROM fresh f
  LEFT JOIN lead ld ON ld.tenant_id = f.known_tenant AND ld.campaign_id IS NOT DISTINCT FROM f.known_campaign
                   AND ld.phone_number = f.from_number
  ORDER BY f.call_id
  ON CONFLICT (provider_call_id) DO NOTHING
  RETURNING cl.provider_call_id, cl.id, cl.lead_id, cl.tenant_id, cl.campaign_id, cl.phone_number_id,
            cl.agent_name, cl.agent_source, cl.from_number, cl.to_number, cl.dispatch_claimed_at IS NOT NULL;
END
$$;
