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
  // A dispatch request is abandoned when the dispatch budget is spent: one that went on past it
  // could land after the next delivery found the room empty and sent a second agent (while the
  // database is down no dispatch claim guards against that). Seconds, fractions allowed.
  const dispatchOptions = { requestTimeout: settings.dispatchBudgetMs / 1000 };
  return {
    dispatch: new AgentDispatchClient(url, apiKey, apiSecret, dispatchOptions),
    // Provisioning runs from the CLI, with no caller waiting.
    sip: new SipClient(url, apiKey, apiSecret, { requestTimeout: 10 }),
  };
}
