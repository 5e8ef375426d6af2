ALTER TABLE "call_logs" DROP CONSTRAINT "call_logs_phone_number_id_phone_numbers_id_fk";
--> statement-breakpoint
DROP INDEX "webhook_events_room_idx";
--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "room_sid" text;
--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "claimed_at" timestamp with time zone DEFAULT now() NOT NULL;
--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "processed_at" timestamp with time zone;
--> statement-breakpoint
-- Events recorded before this migration were acted on when they were recorded.
UPDATE "webhook_events" SET "processed_at" = "received_at";
--> statement-breakpoint
ALTER TABLE "phone_numbers" ADD CONSTRAINT "phone_numbers_id_tenant_key" UNIQUE("id","tenant_id");
--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_phone_number_same_tenant_fk" FOREIGN KEY ("phone_number_id","tenant_id") REFERENCES "public"."phone_numbers"("id","tenant_id") ON DELETE no action ON UPDATE no action;
--> statement-breakpoint
CREATE INDEX "webhook_events_room_sid_idx" ON "webhook_events" USING btree ("room_sid","event");
--> statement-breakpoint
CREATE INDEX "webhook_events_received_idx" ON "webhook_events" USING btree ("received_at");
--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_tenant_owned_refs" CHECK ("call_logs"."tenant_id" is not null or ("call_logs"."campaign_id" is null and "call_logs"."lead_id" is null and "call_logs"."phone_number_id" is null));
--> statement-breakpoint
-- A campaign may only dispatch its own tenant's agents or system-wide ones (tenant_id null).
-- A composite foreign key cannot say "same tenant or none", so a trigger does.
CREATE FUNCTION "campaign_agent_same_tenant"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.agent_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM agents a WHERE a.id = NEW.agent_id AND (a.tenant_id IS NULL OR a.tenant_id = NEW.tenant_id)
  ) THEN
    RAISE EXCEPTION 'campaign "%" may only use agents of its own tenant or system agents', NEW.name
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER "campaigns_agent_same_tenant" BEFORE INSERT OR UPDATE OF agent_id, tenant_id ON "campaigns"
  FOR EACH ROW EXECUTE FUNCTION "campaign_agent_same_tenant"();
