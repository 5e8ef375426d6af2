-- record_calls (0010) now reaches call_logs and leads through the indexes of their keys, also with
-- a plan made while the tables were small.
-- - A call already recorded was found by `NOT EXISTS`, which the planner may answer with a hash
--   anti-join over a sequential scan of call_logs. It chose that on a young table (statistics of
--   a few hundred rows) and kept the plan, cached for the connection, as the table grew: in an
--   8-second benchmark from an empty database, 3,000 statements read 17 million rows of call_logs.
--   The check is now a lateral probe with LIMIT 1, one lookup per call, and the function runs
--   without sequential scans (see SET below): a probe planned on a small table would otherwise be
--   one, cached in turn.
-- - The caller's lead was looked up by tenant and number with the campaign as a filter:
--   `campaign_id IS NOT DISTINCT FROM` is no index condition, so on PostgreSQL before 18 (no skip
--   scan) leads_caller_key was read across every lead of the tenant for each caller, about 0.4 ms
--   of the database's time per call at 10,000 leads, growing with the tenant. The lookup now gives
--   the index all three of its columns: the campaign by equality, or IS NULL for a call without one.
-- The function is otherwise unchanged.
CREATE OR REPLACE FUNCTION record_calls(calls jsonb)
RETURNS TABLE (call_id text, call_log_id uuid, lead_id uuid, tenant_id uuid, campaign_id uuid, phone_number_id uuid,
               agent_name text, agent_source text, from_number text, to_number text, dispatch_claimed boolean,
               outcome text, outcome_reason text, transfer_to text, caller jsonb)
LANGUAGE plpgsql
-- Every table this statement reads it reads by key (the call's id, the caller's lead, the directory's
-- ids, a lead's calls). On a table of a hundred rows the planner prefers a sequential scan even for
-- a keyed probe, or a bitmap over whichever index looks selective there (leads by campaign), and the
-- connection keeps that plan as the table grows, until the next ANALYZE. Without either it is left
-- with index scans, and from the size at which autovacuum first analyzes a table (50 rows) the
-- key's own index is the one it picks. (A table analyzed while empty makes every index look alike,
-- and a plan made then may use another; the next ANALYZE replaces it. The foreign-key checks of the
-- inserts are planned by PostgreSQL once per connection, outside this function's settings.)
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT * FROM jsonb_to_recordset(calls) AS x(
      ord int, call_id text, room_name text, room_sid text, trunk_id text, from_number text, from_raw text,
      to_number text, to_raw text, tenant_id uuid, campaign_id uuid, phone_number_id uuid,
      agent_name text, agent_source text, metadata jsonb, created_at timestamptz,
      caller_joined_at timestamptz, claim_dispatch boolean,
      outcome text, outcome_reason text, transfer_to text, makes_lead boolean, lead_status text,
      ended_status text, end_reason text)
  ), fresh AS (
    SELECT DISTINCT ON (x.call_id) x.*, t.id AS known_tenant, c.id AS known_campaign, pn.id AS known_number
    FROM input x
    -- Recorded before: one index lookup per call (see above), never a join over call_logs.
    LEFT JOIN LATERAL (SELECT true AS recorded FROM call_logs cl WHERE cl.provider_call_id = x.call_id LIMIT 1) seen ON true
    LEFT JOIN tenants t ON t.id = x.tenant_id
    LEFT JOIN campaigns c ON c.id = x.campaign_id AND c.tenant_id = t.id
    LEFT JOIN phone_numbers pn ON pn.id = x.phone_number_id AND t.id IS NOT NULL
    WHERE seen.recorded IS NULL
    ORDER BY x.call_id, x.ord
  ), callers AS (
    -- One row per lead: a statement's ON CONFLICT may not update a row twice.
    SELECT f.known_tenant, f.known_campaign, f.from_number, max(f.created_at) AS last_call_at,
           (array_agg(coalesce(f.lead_status, 'calling') ORDER BY f.created_at DESC))[1] AS lead_status
    FROM fresh f WHERE f.known_tenant IS NOT NULL AND f.from_number IS NOT NULL AND f.makes_lead IS NOT FALSE
    GROUP BY f.known_tenant, f.known_campaign, f.from_number
  ), prior AS MATERIALIZED (
    -- Each caller of this batch looks its lead up once, through leads_caller_key with all three of
    -- its columns as the index condition: `campaign_id IS NOT DISTINCT FROM` is no index condition,
    -- and with it the scan read every lead of the tenant for each caller. A caller with a campaign
    -- finds its lead by equality, one without by IS NULL; the other branch finds nothing at once.
    -- The lead's calls are counted through call_logs_lead_created_idx. MATERIALIZED keeps the
    -- planner from running this again for every call it joins.
    SELECT l.id, l.status,
           (SELECT count(*)::int FROM call_logs c WHERE c.lead_id = l.id) AS previous_calls,
           (SELECT c.created_at FROM call_logs c WHERE c.lead_id = l.id ORDER BY c.created_at DESC LIMIT 1) AS last_call_at
    FROM callers k
    CROSS JOIN LATERAL (
      SELECT l.id, l.status FROM leads l
      WHERE l.tenant_id = k.known_tenant AND l.campaign_id = k.known_campaign AND l.phone_number = k.from_number
      UNION ALL
      SELECT l.id, l.status FROM leads l
      WHERE k.known_campaign IS NULL AND l.tenant_id = k.known_tenant AND l.campaign_id IS NULL AND l.phone_number = k.from_number
      -- One lead at most (leads_caller_key); LIMIT also keeps the planner from turning this into a
      -- join over all leads, which it would on a table it has no statistics for yet.
      LIMIT 1
    ) l
  ), lead AS (
    INSERT INTO leads AS l (tenant_id, campaign_id, phone_number, name, status, last_call_at)
    SELECT k.known_tenant, k.known_campaign, k.from_number, 'Inbound Caller ' || k.from_number, k.lead_status, k.last_call_at
    FROM callers k ORDER BY k.known_tenant, k.known_campaign, k.from_number
    ON CONFLICT (tenant_id, campaign_id, phone_number)
    DO UPDATE SET status = CASE WHEN excluded.last_call_at >= l.last_call_at THEN excluded.status ELSE l.status END,
                  last_call_at = greatest(l.last_call_at, excluded.last_call_at), updated_at = now()
    RETURNING l.id, l.tenant_id, l.campaign_id, l.phone_number, l.name, l.email
  )
  INSERT INTO call_logs AS cl (provider_call_id, room_name, room_sid, trunk_id, from_number, from_raw, to_number, to_raw,
                               tenant_id, campaign_id, lead_id, phone_number_id, agent_name, agent_source, metadata, created_at,
                               caller_joined_at, dispatch_claimed_at, dispatch_attempts,
                               outcome, outcome_reason, transfer_to, status, ended_at, disconnect_reason)
  SELECT f.call_id, f.room_name, f.room_sid, f.trunk_id, f.from_number, f.from_raw, f.to_number, f.to_raw,
         f.known_tenant, f.known_campaign, ld.id, f.known_number, f.agent_name, f.agent_source,
         f.metadata || CASE WHEN ld.id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('caller', jsonb_build_object(
           'lead_id', ld.id, 'name', nullif(ld.name, 'Inbound Caller ' || ld.phone_number), 'email', ld.email,
           'status', coalesce(p.status, 'new'),
           'previous_calls', coalesce(p.previous_calls, 0), 'last_call_at', p.last_call_at)) END,
         f.created_at,
         f.caller_joined_at, CASE WHEN f.claim_dispatch THEN now() END, CASE WHEN f.claim_dispatch THEN 1 ELSE 0 END,
         coalesce(f.outcome, 'dispatched'), f.outcome_reason, f.transfer_to, coalesce(f.ended_status, 'ringing'),
         CASE WHEN f.ended_status IS NOT NULL THEN f.created_at END, f.end_reason
  FROM fresh f
  LEFT JOIN lead ld ON ld.tenant_id = f.known_tenant AND ld.campaign_id IS NOT DISTINCT FROM f.known_campaign
                   AND ld.phone_number = f.from_number
  LEFT JOIN prior p ON p.id = ld.id
  ORDER BY f.call_id
  ON CONFLICT (provider_call_id) DO NOTHING
  RETURNING cl.provider_call_id, cl.id, cl.lead_id, cl.tenant_id, cl.campaign_id, cl.phone_number_id,
            cl.agent_name, cl.agent_source, cl.from_number, cl.to_number, cl.dispatch_claimed_at IS NOT NULL,
            cl.outcome, cl.outcome_reason, cl.transfer_to, cl.metadata->'caller';
END
$$;
