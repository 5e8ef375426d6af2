-- pgbench: one call's database work against Switchboard's own schema, as one transaction: the
-- number's directory entry, the caller's lead upserted, the call log inserted. The machine's
-- ceiling for one durable transaction per call.
\set caller random(0, 9999)
BEGIN;
SELECT pn.id, pn.tenant_id, pn.campaign_id FROM phone_numbers pn JOIN tenants t ON t.id = pn.tenant_id AND t.active WHERE pn.e164 = '+14155550100' AND pn.active;
INSERT INTO leads (tenant_id, campaign_id, phone_number, name, status, last_call_at)
  SELECT pn.tenant_id, pn.campaign_id, '+1212' || lpad(:caller::text, 7, '0'), 'Inbound Caller', 'calling', now()
  FROM phone_numbers pn WHERE pn.e164 = '+14155550100'
  ON CONFLICT (tenant_id, campaign_id, phone_number) DO UPDATE SET status = 'calling', last_call_at = excluded.last_call_at, updated_at = now();
INSERT INTO call_logs (provider_call_id, tenant_id, campaign_id, phone_number_id, from_number, to_number, agent_name, agent_source)
  SELECT 'pgbench-' || :client_id || '-' || gen_random_uuid(), pn.tenant_id, pn.campaign_id, pn.id, '+1212' || lpad(:caller::text, 7, '0'), pn.e164, 'acme-sales', 'campaign'
  FROM phone_numbers pn WHERE pn.e164 = '+14155550100';
COMMIT;
