-- The campaigns and numbers naming a schedule, found without reading them all: a schedule's
-- deletion looks them up, and its foreign keys check them.
CREATE INDEX "campaigns_schedule_idx" ON "campaigns" USING btree ("schedule_id");--> statement-breakpoint
CREATE INDEX "phone_numbers_schedule_idx" ON "phone_numbers" USING btree ("schedule_id");