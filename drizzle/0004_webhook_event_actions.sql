DROP INDEX "webhook_events_room_sid_idx";--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "action" text;--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "occurred_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "webhook_events_room_action_idx" ON "webhook_events" USING btree ("room_sid","action");--> statement-breakpoint
-- Before this migration only room_finished was looked up by room.
UPDATE "webhook_events" SET "action" = 'room_finished' WHERE "event" = 'room_finished';
