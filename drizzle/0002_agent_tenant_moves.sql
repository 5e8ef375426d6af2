-- The other half of campaign_agent_same_tenant (0001): an agent that campaigns use cannot move
-- to another tenant, or those campaigns would dispatch a stranger's agent.
CREATE FUNCTION "agent_keeps_campaign_tenants"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.tenant_id IS NOT NULL AND NEW.tenant_id IS DISTINCT FROM OLD.tenant_id AND EXISTS (
    SELECT 1 FROM campaigns c WHERE c.agent_id = NEW.id AND c.tenant_id <> NEW.tenant_id
  ) THEN
    RAISE EXCEPTION 'agent "%" is used by campaigns of another tenant', NEW.name
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER "agents_keep_campaign_tenants" BEFORE UPDATE OF tenant_id ON "agents"
  FOR EACH ROW EXECUTE FUNCTION "agent_keeps_campaign_tenants"();
