CREATE TABLE "blocklist_entries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid,
	"pattern" text NOT NULL,
	"reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "blocklist_entries_tenant_pattern_key" UNIQUE NULLS NOT DISTINCT("tenant_id","pattern")
);
--> statement-breakpoint
CREATE TABLE "schedules" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"time_zone" text NOT NULL,
	"weekly_hours" jsonb NOT NULL,
	"holidays" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"after_hours" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "schedules_tenant_name_key" UNIQUE("tenant_id","name"),
	CONSTRAINT "schedules_id_tenant_key" UNIQUE("id","tenant_id")
);
--> statement-breakpoint
ALTER TABLE "call_logs" DROP CONSTRAINT "call_logs_agent_source_check";--> statement-breakpoint
ALTER TABLE "call_logs" ALTER COLUMN "agent_name" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "call_logs" ALTER COLUMN "agent_source" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "call_logs" ADD COLUMN "outcome" text DEFAULT 'dispatched' NOT NULL;--> statement-breakpoint
ALTER TABLE "call_logs" ADD COLUMN "outcome_reason" text;--> statement-breakpoint
ALTER TABLE "call_logs" ADD COLUMN "transfer_to" text;--> statement-breakpoint
ALTER TABLE "campaigns" ADD COLUMN "schedule_id" uuid;--> statement-breakpoint
ALTER TABLE "campaigns" ADD COLUMN "variables" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "phone_numbers" ADD COLUMN "block_anonymous" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "phone_numbers" ADD COLUMN "schedule_id" uuid;--> statement-breakpoint
ALTER TABLE "phone_numbers" ADD COLUMN "max_concurrent_calls" integer;--> statement-breakpoint
ALTER TABLE "phone_numbers" ADD COLUMN "overflow" jsonb;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "max_concurrent_calls" integer;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "overflow" jsonb;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "variables" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "blocklist_entries" ADD CONSTRAINT "blocklist_entries_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedules" ADD CONSTRAINT "schedules_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "blocklist_entries_created_idx" ON "blocklist_entries" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "schedules_created_idx" ON "schedules" USING btree ("created_at","id");--> statement-breakpoint
ALTER TABLE "campaigns" ADD CONSTRAINT "campaigns_schedule_same_tenant_fk" FOREIGN KEY ("schedule_id","tenant_id") REFERENCES "public"."schedules"("id","tenant_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "phone_numbers" ADD CONSTRAINT "phone_numbers_schedule_same_tenant_fk" FOREIGN KEY ("schedule_id","tenant_id") REFERENCES "public"."schedules"("id","tenant_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "call_logs_open_by_number_idx" ON "call_logs" USING btree ("phone_number_id","created_at") WHERE "call_logs"."ended_at" is null and "call_logs"."outcome" = 'dispatched' and "call_logs"."outcome_reason" is null;--> statement-breakpoint
CREATE INDEX "call_logs_open_by_tenant_idx" ON "call_logs" USING btree ("tenant_id","created_at") WHERE "call_logs"."ended_at" is null and "call_logs"."outcome" = 'dispatched' and "call_logs"."outcome_reason" is null;--> statement-breakpoint
CREATE INDEX "call_logs_outcome_created_idx" ON "call_logs" USING btree ("outcome","created_at","id");--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_outcome_check" CHECK (outcome in ('dispatched', 'rejected', 'transferred'));--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_outcome_reason_check" CHECK (outcome_reason in ('blocklist', 'anonymous_blocked', 'after_hours', 'holiday', 'over_capacity'));--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_dispatched_has_agent" CHECK ("call_logs"."outcome" <> 'dispatched' or ("call_logs"."agent_name" is not null and "call_logs"."agent_source" is not null));--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_transferred_has_destination" CHECK ("call_logs"."outcome" <> 'transferred' or "call_logs"."transfer_to" is not null);--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_agent_source_check" CHECK (agent_source in ('campaign', 'tenant_default', 'system_default', 'dispatch_rule', 'after_hours', 'overflow'));--> statement-breakpoint
ALTER TABLE "phone_numbers" ADD CONSTRAINT "phone_numbers_max_concurrent_calls_positive" CHECK ("phone_numbers"."max_concurrent_calls" > 0);--> statement-breakpoint
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_max_concurrent_calls_positive" CHECK ("tenants"."max_concurrent_calls" > 0);--> statement-breakpoint
-- Routing reads schedules and blocklists from its in-memory directory (0007): announce their changes too.
CREATE TRIGGER schedules_directory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON schedules
  FOR EACH STATEMENT EXECUTE FUNCTION switchboard_directory_changed();
--> statement-breakpoint
CREATE TRIGGER blocklist_entries_directory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON blocklist_entries
  FOR EACH STATEMENT EXECUTE FUNCTION switchboard_directory_changed();
--> statement-breakpoint
-- record_calls (0008) learns the call's outcome. A call routed as usual is recorded as before. A
-- call that is rejected is over when it is routed: it is recorded ended then, with the status and
-- reason it carries (ended_status, end_reason). A caller refused by a blocklist (or
-- for withholding their number) gets no lead: spam is not a lead. A lead's status follows its
-- newest call's (lead_status). The answer gains the outcome, so a repeat gets the stored one, and
-- what the agent may want to know of the caller: the lead's name, email and status as they were
-- before this call (no name while it has only the placeholder one), how many calls it had and
-- when the last of them came in (the statement's snapshot is
-- taken before its own writes, so `prior` sees the lead as it was). That is kept in the call's
-- metadata (`caller`), so a repeated delivery tells the agent the same.
DROP FUNCTION record_calls(jsonb);
--> statement-breakpoint
CREATE FUNCTION record_calls(calls jsonb)
RETURNS TABLE (call_id text, call_log_id uuid, lead_id uuid, tenant_id uuid, campaign_id uuid, phone_number_id uuid,
               agent_name text, agent_source text, from_number text, to_number text, dispatch_claimed boolean,
               outcome text, outcome_reason text, transfer_to text, caller jsonb)
LANGUAGE plpgsql AS $$
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
    LEFT JOIN tenants t ON t.id = x.tenant_id
    LEFT JOIN campaigns c ON c.id = x.campaign_id AND c.tenant_id = t.id
    LEFT JOIN phone_numbers pn ON pn.id = x.phone_number_id AND t.id IS NOT NULL
    WHERE NOT EXISTS (SELECT 1 FROM call_logs cl WHERE cl.provider_call_id = x.call_id)
    ORDER BY x.call_id, x.ord
  ), callers AS (
    -- One row per lead: a statement's ON CONFLICT may not update a row twice.
    SELECT f.known_tenant, f.known_campaign, f.from_number, max(f.created_at) AS last_call_at,
           (array_agg(coalesce(f.lead_status, 'calling') ORDER BY f.created_at DESC))[1] AS lead_status
    FROM fresh f WHERE f.known_tenant IS NOT NULL AND f.from_number IS NOT NULL AND f.makes_lead IS NOT FALSE
    GROUP BY f.known_tenant, f.known_campaign, f.from_number
  ), prior AS MATERIALIZED (
    -- Each caller of this batch looks its lead up once (an index scan per caller, never a scan of
    -- all leads; MATERIALIZED keeps the planner from running it again for every call it joins),
    -- and the lead's calls through call_logs_lead_created_idx.
    SELECT p.* FROM callers k
    CROSS JOIN LATERAL (
      SELECT l.id, l.status,
             (SELECT count(*)::int FROM call_logs c WHERE c.lead_id = l.id) AS previous_calls,
             (SELECT c.created_at FROM call_logs c WHERE c.lead_id = l.id ORDER BY c.created_at DESC LIMIT 1) AS last_call_at
      FROM leads l
      WHERE l.tenant_id = k.known_tenant AND l.phone_number = k.from_number
        AND l.campaign_id IS NOT DISTINCT FROM k.known_campaign
      -- One lead at most (leads_caller_key); LIMIT also keeps the planner from turning this into a
      -- join over all leads, which it would on a table it has no statistics for yet.
      LIMIT 1
    ) p
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
--> statement-breakpoint
-- Records one call of a number or tenant with a concurrency cap, admitting it only while fewer of
-- its calls than the cap hold a slot; past the cap it is recorded with `cap.overflow`'s outcome
-- instead. A call holds a slot from its record (routed as usual) until it ends, or until
-- cap.max_call_seconds have passed (an end that never arrived). The count and the insert happen
-- under a transaction-level advisory lock per capped tenant and number, taken tenant first, so
-- calls racing in from any number of processes are admitted one after the other: never more than
-- the cap, and no deadlock. `cap`: { tenant_id, tenant_limit?, phone_number_id, number_limit?,
-- max_call_seconds, number_overflow, tenant_overflow: the fields of record_calls' input each overflow
-- changes }; the number's cap is checked first.
CREATE FUNCTION record_capped_call(call jsonb, cap jsonb)
RETURNS TABLE (call_id text, call_log_id uuid, lead_id uuid, tenant_id uuid, campaign_id uuid, phone_number_id uuid,
               agent_name text, agent_source text, from_number text, to_number text, dispatch_claimed boolean,
               outcome text, outcome_reason text, transfer_to text, caller jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  capped_tenant uuid := (cap->>'tenant_id')::uuid;
  capped_number uuid := (cap->>'phone_number_id')::uuid;
  since timestamptz := now() - make_interval(secs => (cap->>'max_call_seconds')::int);
BEGIN
  -- A call id recorded before keeps its stored outcome (record_calls inserts nothing): no lock needed.
  IF EXISTS (SELECT 1 FROM call_logs cl WHERE cl.provider_call_id = call->>'call_id') THEN
    RETURN QUERY SELECT * FROM record_calls(jsonb_build_array(call));
    RETURN;
  END IF;
  -- Everything done while the locks are held delays every call of the number: record_calls is run
  -- once on nothing first, so that this connection's first use of it (catalog caches, parsing: tens
  -- of milliseconds) is paid before the locks rather than under them.
  PERFORM FROM record_calls('[]'::jsonb);
  IF cap ? 'tenant_limit' THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('switchboard.cap:' || capped_tenant, 0));
  END IF;
  IF cap ? 'number_limit' THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('switchboard.cap:' || capped_number, 0));
  END IF;
  -- Counted after the locks, so every call admitted before (and committed) is in the count. A
  -- repeat that raced past the check above meets the first delivery's row in record_calls.
  IF cap ? 'number_limit' AND (SELECT count(*) FROM call_logs cl
          WHERE cl.phone_number_id = capped_number AND cl.created_at > since
            AND cl.ended_at IS NULL AND cl.outcome = 'dispatched' AND cl.outcome_reason IS NULL) >= (cap->>'number_limit')::int THEN
    call := call || (cap->'number_overflow');
  ELSIF cap ? 'tenant_limit' AND (SELECT count(*) FROM call_logs cl
          WHERE cl.tenant_id = capped_tenant AND cl.created_at > since
            AND cl.ended_at IS NULL AND cl.outcome = 'dispatched' AND cl.outcome_reason IS NULL) >= (cap->>'tenant_limit')::int THEN
    call := call || (cap->'tenant_overflow');
  END IF;
  RETURN QUERY SELECT * FROM record_calls(jsonb_build_array(call));
END
$$;
