-- Every admin list is a newest-first page, (created_at, id) descending, under a filter. Each filter
-- the API offers gets an index that serves both the filter and the order, so a page reads about
-- its own rows whatever the size of the table (bench/scale.ts; tests/admin-list-scale.test.ts).
-- Built without CONCURRENTLY (migrations run in one transaction): on a large existing call_logs
-- the build holds back writes to it for seconds, and calls meanwhile go to the journal.
CREATE INDEX "agents_created_idx" ON "agents" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "call_logs_status_created_idx" ON "call_logs" USING btree ("status","created_at","id");--> statement-breakpoint
CREATE INDEX "call_logs_campaign_created_idx" ON "call_logs" USING btree ("campaign_id","created_at","id");--> statement-breakpoint
CREATE INDEX "call_logs_lead_created_idx" ON "call_logs" USING btree ("lead_id","created_at","id");--> statement-breakpoint
CREATE INDEX "call_logs_from_created_idx" ON "call_logs" USING btree ("from_number","created_at","id");--> statement-breakpoint
CREATE INDEX "call_logs_to_created_idx" ON "call_logs" USING btree ("to_number","created_at","id");--> statement-breakpoint
CREATE INDEX "campaigns_created_idx" ON "campaigns" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "leads_created_idx" ON "leads" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "leads_campaign_created_idx" ON "leads" USING btree ("campaign_id","created_at","id");--> statement-breakpoint
CREATE INDEX "leads_phone_number_idx" ON "leads" USING btree ("phone_number");--> statement-breakpoint
CREATE INDEX "phone_numbers_tenant_created_idx" ON "phone_numbers" USING btree ("tenant_id","created_at","id");--> statement-breakpoint
CREATE INDEX "phone_numbers_created_idx" ON "phone_numbers" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "phone_numbers_campaign_idx" ON "phone_numbers" USING btree ("campaign_id");--> statement-breakpoint
CREATE INDEX "tenants_created_idx" ON "tenants" USING btree ("created_at","id");