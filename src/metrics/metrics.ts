// Prometheus metrics (prom-client), one registry per app: what an operator alerts on. Features
// report through the narrow hooks app.ts gives them (onRouted, the events observer, the dispatcher).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export interface MetricsSources {
  /** Entries waiting in the journal for the database. */
  journalDepth: () => number;
  /** Whether the database is taking statements. */
  databaseAvailable: () => boolean;
  /** Statements sent and not answered yet, and how many can run at once. */
  databaseStatements: () => { inFlight: number; connections: number };
  /** Outbound webhooks waiting to be delivered (read from the database when scraped). */
  outbox: () => Promise<{ depth: number; oldestDueSeconds: number }>;
}

export function createMetrics(sources: MetricsSources) {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: "switchboard_" });
  registerGauges(registers, sources);
  return {
    registry,
    callsRouted: new Counter({
      name: "switchboard_calls_routed_total",
      help: "Routing decisions by outcome (dispatched, rejected, transferred) and where the agent came from ('none' without one), per tenant ('none' for an unknown number)",
      labelNames: ["outcome", "agent_source", "tenant_id"] as const,
      registers,
    }),
    callRecords: new Counter({
      name: "switchboard_call_records_total",
      help: "Call records by what became of them: recorded, pending (journaled) or unrecorded",
      labelNames: ["state"] as const,
      registers,
    }),
    routingSeconds: new Histogram({
      name: "switchboard_routing_duration_seconds",
      help: "Time from a call's arrival to its routing decision, its record included",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    webhookEvents: new Counter({
      name: "switchboard_webhook_events_total",
      help: "Signed LiveKit webhooks by event and outcome (handled, duplicate, ignored, journaled, failed)",
      labelNames: ["event", "outcome"] as const,
      registers,
    }),
    signatureFailures: new Counter({
      name: "switchboard_webhook_signature_failures_total",
      help: "Webhooks refused for a missing or wrong signature",
      registers,
    }),
    dispatches: new Counter({
      name: "switchboard_agent_dispatches_total",
      help: "CreateDispatch calls to LiveKit by outcome (success, failure)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    ...outboundWebhookMetrics(registers),
    databaseErrors: new Counter({
      name: "switchboard_database_errors_total",
      help: "Requests answered 503 because the database was unavailable",
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Attempts to deliver webhooks to tenants' endpoints (webhooks/worker.ts). */
function outboundWebhookMetrics(registers: Registry[]) {
  return {
    webhookDeliveries: new Counter({
      name: "switchboard_outbound_webhook_attempts_total",
      help: "Attempts to deliver outbound webhooks by outcome (delivered, retrying, failed, disabled)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    webhookAttemptSeconds: new Histogram({
      name: "switchboard_outbound_webhook_attempt_duration_seconds",
      help: "Time an outbound webhook attempt took, answered or not",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };
}

/** Gauges read from their sources when scraped. */
function registerGauges(registers: Registry[], sources: MetricsSources) {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge("switchboard_journal_depth", "Call and event records waiting in the journal for the database", sources.journalDepth);
  gauge("switchboard_database_available", "1 while the database takes statements, 0 while it is away", () =>
    sources.databaseAvailable() ? 1 : 0,
  );
  // Pool usage: in flight over connections near or above 1 means calls queue for a connection.
  gauge("switchboard_database_statements_in_flight", "Database statements sent and not answered yet", () =>
    sources.databaseStatements().inFlight,
  );
  registerOutboxGauges(registers, sources.outbox);
  gauge(
    "switchboard_database_connections_max",
    "Statements the database client runs at once (DB_POOL_MAX; 1 for the embedded database)",
    () => sources.databaseStatements().connections,
  );
}

/** One read of the outbox per scrape serves both gauges; a database that is away leaves them as they were. */
function registerOutboxGauges(registers: Registry[], read: MetricsSources["outbox"]) {
  let reading: Promise<{ depth: number; oldestDueSeconds: number } | undefined> | undefined;
  const once = () => {
    reading ??= read()
      .catch(() => undefined)
      .finally(() => setTimeout(() => (reading = undefined), 0));
    return reading;
  };
  const gauge = (name: string, help: string, pick: (o: { depth: number; oldestDueSeconds: number }) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const outbox = await once();
        if (outbox) this.set(pick(outbox));
      },
    });
  gauge("switchboard_outbox_depth", "Outbound webhook deliveries pending for enabled endpoints", (o) => o.depth);
  gauge("switchboard_outbox_oldest_due_seconds", "How long the longest-waiting due webhook delivery has waited", (o) => o.oldestDueSeconds);
}
