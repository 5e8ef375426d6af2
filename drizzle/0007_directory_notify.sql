-- Every Switchboard process keeps the routing directory in memory. A change to any table it is
-- built from, by any process, the admin API, seed or plain SQL, is announced on this channel so
-- each process reloads it; once per statement and, as NOTIFY folds equal payloads, once per transaction.
CREATE FUNCTION switchboard_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('switchboard_directory', '');
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER tenants_directory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenants
  FOR EACH STATEMENT EXECUTE FUNCTION switchboard_directory_changed();
--> statement-breakpoint
CREATE TRIGGER agents_directory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agents
  FOR EACH STATEMENT EXECUTE FUNCTION switchboard_directory_changed();
--> statement-breakpoint
CREATE TRIGGER campaigns_directory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON campaigns
  FOR EACH STATEMENT EXECUTE FUNCTION switchboard_directory_changed();
--> statement-breakpoint
CREATE TRIGGER phone_numbers_directory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON phone_numbers
  FOR EACH STATEMENT EXECUTE FUNCTION switchboard_directory_changed();
