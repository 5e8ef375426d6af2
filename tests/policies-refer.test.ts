// A policy's transfer over LiveKit with no transfer trunk (LIVEKIT_TRANSFER_TRUNK_ID unset): the
// only way left is a SIP REFER, which LiveKit refuses for an inbound call it has not answered yet
// (livekit/sip inbound.go newReferReq), and at the caller's join it has not. The caller must not be
// left ringing with no one to answer: they are removed, and the call log says why.
import { expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { callLog, newCall, postEvent, sipCallerJoins, useLiveKitApp } from "./support/livekit-app";

const NUMBER = "+14155550100";
const TRANSFER_TO = "+14155550999";

const { ctx, fake } = useLiveKitApp({
  seed: { tenants: [{ name: "Acme", agents: [{ name: "acme-default", default: true }], phone_numbers: [{ number: NUMBER }] }] },
});

test("no transfer trunk: LiveKit refuses the REFER of a ringing caller, so the caller is removed and the call log says TRANSFER_FAILED", async () => {
  // Closed every day: every call is after hours, and after hours transfers.
  await ctx.database.rows(sql`
    with s as (
      insert into schedules (tenant_id, name, time_zone, weekly_hours, after_hours)
      select id, 'Closed', 'UTC', '{}'::jsonb, ${JSON.stringify({ action: "transfer", transfer_to: TRANSFER_TO })}::jsonb
      from tenants where name = 'Acme' returning id
    )
    update phone_numbers set schedule_id = (select id from s) where e164 = ${NUMBER} returning id`);
  await ctx.directory.reload();
  const call = newCall({ to: NUMBER });
  const res = await postEvent(ctx, await sipCallerJoins(fake, call));
  expect(res.status).toBe(200);

  // The REFER goes out in the background; wait for its outcome on the call log.
  let log = await callLog(ctx, call.callId);
  for (let i = 0; i < 300 && log.disconnectReason !== "TRANSFER_FAILED"; i++) {
    await Bun.sleep(10);
    log = await callLog(ctx, call.callId);
  }
  expect(fake.calls("TransferSIPParticipant").map((c) => c.status)).toEqual([412]);
  expect(fake.transfers(call.room)).toEqual([]);
  expect(fake.removedParticipants(call.room)).toMatchObject([{ cause: "RemoveParticipant" }]);
  expect(fake.agentDispatches(call.room)).toEqual([]);
  expect(log).toMatchObject({ outcome: "transferred", outcomeReason: "after_hours", transferTo: TRANSFER_TO, status: "failed", disconnectReason: "TRANSFER_FAILED" });
  expect(log.metadata.transfer_error).toContain("non established call");
});
