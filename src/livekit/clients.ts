import { AgentDispatchClient, SipClient } from "livekit-server-sdk";
import type { Config } from "../config";
import type { AgentDispatcher } from "./dispatch";

export interface LiveKitClients {
  dispatch: AgentDispatcher;
  sip: SipClient;
}

/** LiveKit's server API clients, or undefined when LIVEKIT_URL and the keys are not all set. */
export function createLiveKitClients(settings: Config["livekit"]): LiveKitClients | undefined {
  const { url, apiKey, apiSecret } = settings;
  if (!url || !apiKey || !apiSecret) return undefined;
  // Bounded so a hung LiveKit API cannot hold a room's webhook queue for long, and shorter than
  // the dispatch claim (10 s) so an unanswered CreateDispatch is settled before the claim lapses.
  const options = { requestTimeout: 3 };
  return {
    dispatch: new AgentDispatchClient(url, apiKey, apiSecret, options),
    sip: new SipClient(url, apiKey, apiSecret, options),
  };
}
