CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid,
	"label" text,
	"prefix" text NOT NULL,
	"key_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_keys_key_hash_unique" UNIQUE("key_hash")
);
--> statement-breakpoint
ALTER TABLE "campaigns" DROP CONSTRAINT "campaigns_tenant_name_key";--> statement-breakpoint
ALTER TABLE "call_logs" DROP CONSTRAINT "call_logs_phone_number_id_phone_numbers_id_fk";
--> statement-breakpoint
ALTER TABLE "call_logs" DROP CONSTRAINT "call_logs_lead_same_tenant_fk";
--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "description" text;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "metadata" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "campaigns" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "leads" ADD COLUMN "email" text;--> statement-breakpoint
ALTER TABLE "leads" ADD COLUMN "metadata" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_keys_prefix_idx" ON "api_keys" USING btree ("prefix");--> statement-breakpoint
CREATE INDEX "api_keys_tenant_created_idx" ON "api_keys" USING btree ("tenant_id","created_at");--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_phone_number_id_phone_numbers_id_fk" FOREIGN KEY ("phone_number_id") REFERENCES "public"."phone_numbers"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
-- Deleting a lead unlinks its calls but leaves them with their tenant: SET NULL of lead_id only.
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_lead_same_tenant_fk" FOREIGN KEY ("lead_id","tenant_id") REFERENCES "public"."leads"("id","tenant_id") ON DELETE SET NULL ("lead_id") ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "campaigns_tenant_name_key" ON "campaigns" USING btree ("tenant_id","name") WHERE "campaigns"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "leads_tenant_created_idx" ON "leads" USING btree ("tenant_id","created_at","id");--> statement-breakpoint
-- Newest-first pages of the admin API, keyed by (created_at, id), per tenant and across tenants.
DROP INDEX "call_logs_tenant_created_idx";--> statement-breakpoint
CREATE INDEX "call_logs_tenant_created_idx" ON "call_logs" USING btree ("tenant_id","created_at","id");--> statement-breakpoint
CREATE INDEX "call_logs_created_idx" ON "call_logs" USING btree ("created_at","id");--> statement-breakpoint
-- A number may not be linked to a deleted campaign (the composite key only checks that it exists).
-- FOR SHARE waits for a campaign being deleted right now and then sees it deleted; a plain read
-- would let the link commit after the delete has unlinked the campaign's numbers. Only a new link
-- is checked: re-checking an unchanged one would wait on the campaign while holding the number,
-- the opposite order of a campaign delete, and deadlock with it.
CREATE FUNCTION "phone_number_campaign_live"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.campaign_id IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.campaign_id IS DISTINCT FROM OLD.campaign_id) THEN
    PERFORM 1 FROM campaigns c WHERE c.id = NEW.campaign_id AND c.deleted_at IS NULL FOR SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'phone number % may not use deleted campaign %', NEW.e164, NEW.campaign_id
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER "phone_numbers_campaign_live" BEFORE INSERT OR UPDATE OF campaign_id ON "phone_numbers"
  FOR EACH ROW EXECUTE FUNCTION "phone_number_campaign_live"();
--> statement-breakpoint
-- 0001's check read the agent without a lock, so a campaign could be created with an agent that
-- was at that moment moving to another tenant. FOR KEY SHARE waits for such a move (tenant_id is
-- part of the agent's unique key) and checks the agent as it ends up; a move, in turn, waits for
-- the campaign and then sees it (0002). It does not wait for other agent changes (is_default,
-- description), and only a changed link is checked, so ordinary edits never wait on each other.
CREATE OR REPLACE FUNCTION "campaign_agent_same_tenant"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.agent_id IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.agent_id IS DISTINCT FROM OLD.agent_id
      OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id) THEN
    PERFORM 1 FROM agents a WHERE a.id = NEW.agent_id AND (a.tenant_id IS NULL OR a.tenant_id = NEW.tenant_id) FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'campaign "%" may only use agents of its own tenant or system agents', NEW.name
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;
