CREATE TABLE "outbox_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "outbox_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"tenant_id" uuid NOT NULL,
	"type" text NOT NULL,
	"subject" uuid NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"data" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_attempts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "webhook_attempts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"delivery_id" uuid NOT NULL,
	"attempt" integer NOT NULL,
	"attempted_at" timestamp with time zone DEFAULT now() NOT NULL,
	"status_code" integer,
	"latency_ms" integer NOT NULL,
	"error" text
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"event_id" bigint NOT NULL,
	"endpoint_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"subject" uuid NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"leased_until" timestamp with time zone,
	"last_status_code" integer,
	"last_error" text,
	"last_latency_ms" integer,
	"delivered_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "webhook_deliveries_status_check" CHECK (status in ('pending', 'delivered', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "webhook_endpoints" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"url" text NOT NULL,
	"events" text[] DEFAULT '{}'::text[] NOT NULL,
	"description" text,
	"enabled" boolean DEFAULT true NOT NULL,
	"secret" text NOT NULL,
	"previous_secret" text,
	"previous_secret_expires_at" timestamp with time zone,
	"disabled_reason" text,
	"failing_since" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "webhook_endpoints_id_tenant_key" UNIQUE("id","tenant_id"),
	CONSTRAINT "webhook_endpoints_url_http" CHECK ("webhook_endpoints"."url" ~ '^https?://')
);
--> statement-breakpoint
ALTER TABLE "outbox_events" ADD CONSTRAINT "outbox_events_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_attempts" ADD CONSTRAINT "webhook_attempts_delivery_id_webhook_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."webhook_deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_id_outbox_events_id_fk" FOREIGN KEY ("event_id") REFERENCES "public"."outbox_events"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_endpoint_same_tenant_fk" FOREIGN KEY ("endpoint_id","tenant_id") REFERENCES "public"."webhook_endpoints"("id","tenant_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_endpoints" ADD CONSTRAINT "webhook_endpoints_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "outbox_events_created_idx" ON "outbox_events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "webhook_attempts_delivery_idx" ON "webhook_attempts" USING btree ("delivery_id","attempt");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" USING btree ("next_attempt_at") WHERE "webhook_deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "webhook_deliveries_order_idx" ON "webhook_deliveries" USING btree ("endpoint_id","subject","event_id") WHERE "webhook_deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "webhook_deliveries_endpoint_created_idx" ON "webhook_deliveries" USING btree ("endpoint_id","created_at","id");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_created_idx" ON "webhook_deliveries" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_event_idx" ON "webhook_deliveries" USING btree ("event_id");--> statement-breakpoint
CREATE INDEX "webhook_endpoints_tenant_created_idx" ON "webhook_endpoints" USING btree ("tenant_id","created_at","id");--> statement-breakpoint
CREATE INDEX "webhook_endpoints_created_idx" ON "webhook_endpoints" USING btree ("created_at","id");--> statement-breakpoint
-- The outbox is written here, by triggers, so that every path that records a call or a lead (the
-- routing decision, the journal's replay after an outage, LiveKit's events, the admin API) writes
-- its events in the same transaction as the change: no event without its record, none missed.
-- An event is kept only when an enabled endpoint of its tenant wants its type; one delivery row
-- per such endpoint. For a tenant without endpoints the cost is one indexed read per change.
CREATE FUNCTION outbox_publish(p_tenant uuid, p_type text, p_subject uuid, p_at timestamptz, p_data jsonb)
RETURNS void LANGUAGE sql AS $$
  WITH targets AS (
    SELECT e.id FROM webhook_endpoints e
    WHERE e.tenant_id = p_tenant AND e.enabled AND (e.events = '{}' OR p_type = ANY (e.events))
  ), event AS (
    INSERT INTO outbox_events (tenant_id, type, subject, occurred_at, data)
    SELECT p_tenant, p_type, p_subject, p_at, p_data WHERE EXISTS (SELECT 1 FROM targets)
    RETURNING id
  )
  INSERT INTO webhook_deliveries (event_id, endpoint_id, tenant_id, subject)
  SELECT event.id, targets.id, p_tenant, p_subject FROM event CROSS JOIN targets
$$;
--> statement-breakpoint
-- A call's events: its outcome when it is recorded (call.started for a dispatched call,
-- call.rejected, call.transferred), call.answered when it gains an answer time, call.ended when its
-- status becomes final. A rejected call ends where it starts: call.rejected says all there is.
-- A row recorded late (after an outage) may carry several at once; they are written in order.
CREATE FUNCTION call_logs_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  row_data jsonb;
BEGIN
  IF NEW.tenant_id IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = NEW.tenant_id AND enabled) THEN
    RETURN NULL;
  END IF;
  row_data := to_jsonb(NEW);
  IF TG_OP = 'INSERT' THEN
    PERFORM outbox_publish(NEW.tenant_id, CASE NEW.outcome WHEN 'dispatched' THEN 'call.started' ELSE 'call.' || NEW.outcome END,
                           NEW.id, NEW.created_at, row_data);
  END IF;
  IF NEW.answered_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.answered_at IS NULL) THEN
    PERFORM outbox_publish(NEW.tenant_id, 'call.answered', NEW.id, NEW.answered_at, row_data);
  END IF;
  IF NEW.status IN ('completed', 'failed', 'abandoned') AND NEW.outcome <> 'rejected'
     AND (TG_OP = 'INSERT' OR OLD.status IN ('ringing', 'in_progress')) THEN
    PERFORM outbox_publish(NEW.tenant_id, 'call.ended', NEW.id, coalesce(NEW.ended_at, now()), row_data);
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER call_logs_outbox_insert AFTER INSERT ON call_logs FOR EACH ROW EXECUTE FUNCTION call_logs_outbox();
--> statement-breakpoint
CREATE TRIGGER call_logs_outbox_update AFTER UPDATE ON call_logs FOR EACH ROW
  WHEN ((OLD.answered_at IS NULL AND NEW.answered_at IS NOT NULL) OR OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION call_logs_outbox();
--> statement-breakpoint
-- lead.updated is for what a person or a call changes in the lead (name, email, status,
-- metadata), not for the time of its latest call: call.started says a known caller called again.
CREATE FUNCTION leads_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = NEW.tenant_id AND enabled) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM outbox_publish(NEW.tenant_id, 'lead.created', NEW.id, NEW.created_at, to_jsonb(NEW));
  ELSE
    PERFORM outbox_publish(NEW.tenant_id, 'lead.updated', NEW.id, NEW.updated_at, to_jsonb(NEW));
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER leads_outbox_insert AFTER INSERT ON leads FOR EACH ROW EXECUTE FUNCTION leads_outbox();
--> statement-breakpoint
CREATE TRIGGER leads_outbox_update AFTER UPDATE ON leads FOR EACH ROW
  WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.email IS DISTINCT FROM NEW.email OR OLD.status IS DISTINCT FROM NEW.status
        OR OLD.metadata IS DISTINCT FROM NEW.metadata OR OLD.campaign_id IS DISTINCT FROM NEW.campaign_id)
  EXECUTE FUNCTION leads_outbox();
