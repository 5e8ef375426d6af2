-- A number can be reassigned to another tenant: its past calls keep the tenant they rang for,
-- so call_logs points at the number by id only (0001 had tied it to the number's tenant).
ALTER TABLE "call_logs" DROP CONSTRAINT "call_logs_phone_number_same_tenant_fk";
--> statement-breakpoint
ALTER TABLE "phone_numbers" DROP CONSTRAINT "phone_numbers_id_tenant_key";
--> statement-breakpoint
ALTER TABLE "call_logs" ADD CONSTRAINT "call_logs_phone_number_id_phone_numbers_id_fk" FOREIGN KEY ("phone_number_id") REFERENCES "public"."phone_numbers"("id") ON DELETE no action ON UPDATE no action;
