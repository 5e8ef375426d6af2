// GET /metrics as Prometheus scrapes it: the counters an operator alerts on move with what the
// service really did (calls routed, LiveKit events, dispatches, refused signatures).
import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { tenants } from "../src/db/schema";
import { openTestContext } from "./support/context";
import {
  acmeDirectory,
  CALLER,
  EVENTS_PATH,
  newCall,
  postEvent,
  SIP_INBOUND_PATH,
  sipCallerJoins,
  TEST_KEYS,
  useLiveKitApp,
} from "./support/livekit-app";
import { signBody } from "./support/livekit-events";

/** The samples of a Prometheus text exposition: `name{labels}` -> value. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    found.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return found;
}

async function scrape(get: (path: string) => Promise<Response>) {
  const res = await get("/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
  return samples(await res.text());
}

describe("GET /metrics with LiveKit", () => {
  const { ctx, fake } = useLiveKitApp({ seed: acmeDirectory });

  test("a SIP caller's join and a sip-inbound call sent twice: two campaign routings for the tenant, one dispatch, one handled event", async () => {
    const before = await scrape(ctx.get);
    const [acme] = await ctx.database.db.select().from(tenants);
    const res = await postEvent(ctx, await sipCallerJoins(fake, newCall()));
    expect(res.status).toBe(200);
    const call = JSON.stringify({ call_id: "metrics-repeat", from_number: "+12125550100", to_number: "+14155550100" });
    // The same call id twice (a retried webhook): one call routed.
    for (const _ of [1, 2]) {
      expect((await ctx.post(SIP_INBOUND_PATH, call, { authorization: await signBody(call, TEST_KEYS) })).status).toBe(200);
    }
    const after = await scrape(ctx.get);
    const grew = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    expect(grew(`switchboard_calls_routed_total{outcome="dispatched",agent_source="campaign",tenant_id="${acme!.id}"}`)).toBe(2);
    expect(grew('switchboard_call_records_total{state="recorded"}')).toBe(2);
    expect(grew('switchboard_agent_dispatches_total{outcome="success"}')).toBe(1);
    expect(grew('switchboard_webhook_events_total{event="participant_joined",outcome="handled"}')).toBe(1);
    expect(grew("switchboard_routing_duration_seconds_count")).toBeGreaterThanOrEqual(2);
    expect(after.get("switchboard_process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(after.get("switchboard_database_available")).toBe(1);
    expect(after.get("switchboard_journal_depth")).toBe(0);
  });

  test("a webhook with a wrong signature is counted as a signature failure and as no event", async () => {
    const before = await scrape(ctx.get);
    const delivery = await sipCallerJoins(fake, newCall(), {}, { apiSecret: "not-the-secret-not-the-secret-0" });
    expect((await ctx.post(EVENTS_PATH, delivery.body, delivery.headers)).status).toBe(401);
    const after = await scrape(ctx.get);
    expect((after.get("switchboard_webhook_signature_failures_total") ?? 0) - (before.get("switchboard_webhook_signature_failures_total") ?? 0)).toBe(1);
    const events = (m: Map<string, number>) => [...m].filter(([k]) => k.startsWith("switchboard_webhook_events_total")).reduce((n, [, v]) => n + v, 0);
    expect(events(after)).toBe(events(before));
  });
});

describe("GET /metrics with METRICS_TOKEN", () => {
  test("without the bearer token 401, with it the metrics; sip-inbound to an unknown number counts as system default", async () => {
    const token = "metrics-token-0123456789";
    const ctx = await openTestContext({ METRICS_TOKEN: token });
    try {
      expect((await ctx.get("/metrics")).status).toBe(401);
      const wrong = await ctx.app.handle(new Request("http://localhost/metrics", { headers: { authorization: `Bearer ${token}x` } }));
      expect(wrong.status).toBe(401);
      const call = await ctx.post(SIP_INBOUND_PATH, { call_id: "metrics-1", from_number: CALLER, to_number: "+14155559999" });
      expect(call.status).toBe(200);
      const res = await ctx.app.handle(new Request("http://localhost/metrics", { headers: { authorization: `Bearer ${token}` } }));
      expect(res.status).toBe(200);
      expect(samples(await res.text()).get('switchboard_calls_routed_total{outcome="dispatched",agent_source="system_default",tenant_id="none"}')).toBe(1);
    } finally {
      await ctx.close();
    }
  });
});

describe("database pool usage", () => {
  test("connections_max is DB_POOL_MAX (1 on the embedded database); statements waiting on the database show as in flight, and leave", async () => {
    // A pool with room to spare and a statement timeout longer than the test: the server's own
    // background statements (the outbox worker, the directory) keep running beside the three held
    // ones, and may show in flight too, so the count is at least three, then back to none.
    const ctx = await openTestContext({ DB_POOL_MAX: "8", DB_STATEMENT_TIMEOUT_MS: "30000" });
    const inFlight = async () => (await scrape(ctx.get)).get("switchboard_database_statements_in_flight") ?? 0;
    const until = async (done: (n: number) => boolean) => {
      let n = await inFlight();
      for (let tries = 0; tries < 100 && !done(n); tries++) {
        await Bun.sleep(20);
        n = await inFlight();
      }
      return n;
    };
    try {
      // The app's first directory load may still be under way: it is in flight until answered.
      expect(await until((n) => n === 0)).toBe(0);
      expect((await scrape(ctx.get)).get("switchboard_database_connections_max")).toBe(ctx.database.kind === "pglite" ? 1 : 8);
      // PGlite runs a statement on this thread: nothing else (a scrape) runs while one waits.
      if (ctx.database.kind === "pglite") return;
      // Another session holds a lock; three statements wait for it, as calls would for a slow database.
      const holder = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
      try {
        const reserved = await holder.reserve();
        await reserved`select pg_advisory_lock(424242)`;
        const waiting = [1, 2, 3].map(() => ctx.database.rows(sql`select pg_advisory_xact_lock(424242)`));
        expect(await until((n) => n >= 3)).toBeGreaterThanOrEqual(3);
        await reserved`select pg_advisory_unlock(424242)`;
        reserved.release();
        await Promise.all(waiting);
        expect(await until((n) => n === 0)).toBe(0);
      } finally {
        await holder.end();
      }
    } finally {
      await ctx.close();
    }
  });
});
