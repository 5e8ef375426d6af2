-- LiveKit dispatches agents by name, one namespace per project: two tenants' agents of one name
-- would share each other's callers. Existing duplicates are not renamed behind anyone's back:
-- the upgrade stops and lists them, to be renamed (PATCH /api/v1/agents/:id) before retrying.
-- The lock keeps an older instance from adding a duplicate between the check and the key.
LOCK TABLE "agents" IN SHARE ROW EXCLUSIVE MODE;--> statement-breakpoint
DO $$
DECLARE duplicates text;
BEGIN
  SELECT string_agg(format('"%s" (%s)', name, owners), '; ' ORDER BY name) INTO duplicates
  FROM (
    SELECT a.name, string_agg(coalesce('tenant ' || t.name, 'system-wide') || ' agent ' || a.id, ', ' ORDER BY a.id) AS owners
    FROM agents a LEFT JOIN tenants t ON t.id = a.tenant_id
    GROUP BY a.name HAVING count(*) > 1
  ) AS shared;
  IF duplicates IS NOT NULL THEN
    RAISE EXCEPTION 'agent names must be unique across tenants (LiveKit dispatches by name); rename these agents, then migrate again: %', duplicates
      USING ERRCODE = 'unique_violation';
  END IF;
END $$;
--> statement-breakpoint
-- Signed LiveKit joins with neither sip.callID nor a participant sid were recorded under '' and
-- shared one call log; each such row gets an id of its own before the check below forbids ''.
UPDATE "call_logs" SET "provider_call_id" = 'empty:' || "id" WHERE "provider_call_id" = '';--> statement-breakpoint
ALTER TABLE "agents" DROP CONSTRAINT "agents_tenant_name_key";--> statement-breakpoint
ALTER TABLE "call_logs" DROP CONSTRAINT "call_logs_agent_source_check";--> statement-breakpoint
ALTER TABLE "call_logs" ADD COLUMN "room_sid" text;--> statement-breakpoint
CREATE INDEX "call_logs_room_sid_idx" ON "call_logs" USING btree ("room_sid");--> statement-breakpoint
ALTER TABLE "agents" ADD CONSTRAINT "agents_name_key" UNIQUE("name");--> statement-breakpoint
ALTER TABLE "agents" ADD CONSTRAINT "agents_id_tenant_key" UNIQUE("id","tenant_id");--> statement-breakpoint
ALTER TABLE "agents" ADD CONSTRAINT "agents_name_not_empty" CHECK ("agents"."name" <> '');--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_provider_call_id_not_empty" CHECK ("call_logs"."provider_call_id" <> '');--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_agent_source_check" CHECK (agent_source in ('campaign', 'tenant_default', 'system_default', 'dispatch_rule'));
