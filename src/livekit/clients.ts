import type { Tracer } from "@opentelemetry/api";
import { AgentDispatchClient, RoomServiceClient, SipClient } from "livekit-server-sdk";
import type { Config } from "../config";
import { inClientSpan } from "../tracing/spans";
import type { AgentDispatcher } from "./dispatch";
import type { CallHandoff } from "./handoff";

export interface LiveKitClients {
  dispatch: AgentDispatcher;
  sip: SipClient;
  /** Removes and transfers callers the policies give no agent. */
  handoff: CallHandoff;
}

/**
 * How long a SIP admin request (`switchboard livekit provision|status`) may take, in seconds.
 * No setting fits: these run from the CLI with no caller waiting, and the delivery budgets
 * (LIVEKIT_*_BUDGET_MS, under 3 s) are too short for the SDK's region failover, which needs at
 * least 5 s on *.livekit.cloud hosts. 10 s is also the SDK's own default.
 */
const SIP_ADMIN_TIMEOUT_S = 10;

/** LiveKit's server API clients, or undefined when LIVEKIT_URL and the keys are not all set. */
export function createLiveKitClients(settings: Config["livekit"], tracer?: Tracer): LiveKitClients | undefined {
  const { url, apiKey, apiSecret } = settings;
  if (!url || !apiKey || !apiSecret) return undefined;
  // A dispatch request is abandoned when the dispatch budget is spent: one that went on past it
  // could land after the next delivery found the room empty and sent a second agent (while the
  // database is down no dispatch claim guards against that). Seconds, fractions allowed.
  const dispatchOptions = { requestTimeout: settings.dispatchBudgetMs / 1000 };
  const dispatch = new AgentDispatchClient(url, apiKey, apiSecret, dispatchOptions);
  const rooms = new RoomServiceClient(url, apiKey, apiSecret, dispatchOptions);
  const sip = new SipClient(url, apiKey, apiSecret, { requestTimeout: SIP_ADMIN_TIMEOUT_S });
  return {
    dispatch: tracer ? tracedDispatcher(dispatch, tracer, new URL(url)) : dispatch,
    sip,
    handoff: {
      removeParticipant: (room, identity) => rooms.removeParticipant(room, identity),
      // The SDK waits as long as the destination may ring (its own ringing timeout): see handoff.ts.
      transferSipParticipant: (room, identity, transferTo) => sip.transferSipParticipant(room, identity, transferTo),
      dialIntoRoom: settings.transferTrunkId ? dialer(sip, settings.transferTrunkId) : undefined,
    },
  };
}

/** Dials a transfer's destination into the caller's room; answers once the dial has started, not when it is answered. */
function dialer(sip: SipClient, trunkId: string): NonNullable<CallHandoff["dialIntoRoom"]> {
  return async (room, number, identity) => {
    const dialed = await sip.createSipParticipant(trunkId, number, room, { participantIdentity: identity, participantName: "Transfer", waitUntilAnswered: false });
    return { sipCallId: dialed.sipCallId };
  };
}

/**
 * LiveKit's dispatch API with a client span per call (a Twirp RPC). Room names hold callers'
 * numbers (call-_+1..._x): the spans carry the agent's name, not the room's.
 */
function tracedDispatcher(dispatcher: AgentDispatcher, tracer: Tracer, url: URL): AgentDispatcher {
  const rpc = (method: string, extra: Record<string, string> = {}) => ({
    "rpc.system": "twirp",
    "rpc.service": "livekit.AgentDispatchService",
    "rpc.method": method,
    "server.address": url.hostname,
    ...extra,
  });
  return {
    listDispatch: (roomName) =>
      inClientSpan(tracer, "livekit.AgentDispatchService/ListDispatch", rpc("ListDispatch"), () => dispatcher.listDispatch(roomName)),
    createDispatch: (roomName, agentName, options) =>
      inClientSpan(tracer, "livekit.AgentDispatchService/CreateDispatch", rpc("CreateDispatch", { "livekit.agent_name": agentName }), () =>
        dispatcher.createDispatch(roomName, agentName, options),
      ),
  };
}
