// Verifies LiveKit's signed webhooks as livekit-server-sdk's WebhookReceiver does: a JWT signed
// with the API secret whose sha256 claim covers the exact body bytes (the raw text as received),
// then the body decoded as a WebhookEvent, ignoring fields a newer LiveKit added.
import { WebhookEvent } from "@livekit/protocol";
import { TokenVerifier } from "livekit-server-sdk";
import type { Config } from "../config";
import { BadRequestError, UnauthorizedError } from "../errors";

export interface WebhookAuth {
  /** Verifies (when on) and parses a LiveKit webhook event. */
  receiveEvent(body: string, authorization: string | null): Promise<WebhookEvent>;
  /** Verifies (when on) any signed JSON body, e.g. a sip-inbound request. */
  verifyBody(body: string, authorization: string | null): Promise<void>;
}

export function createWebhookAuth(settings: Config["livekit"]): WebhookAuth {
  const { apiKey, apiSecret, clockToleranceSeconds } = settings;
  // Signatures are checked when keys are configured and verification is not switched off.
  const verifying = Boolean(apiKey && apiSecret && settings.verifyWebhooks);
  const verifier = new TokenVerifier(apiKey ?? "", apiSecret ?? "");

  const token = (authorization: string | null) => {
    const value = authorization?.replace(/^Bearer\s+/i, "").trim();
    if (!value) throw new UnauthorizedError("authorization: missing signed token");
    return value;
  };

  const verifyBody = async (body: string, authorization: string | null) => {
    if (!verifying) return;
    let claims: { sha256?: string };
    try {
      claims = await verifier.verify(token(authorization), clockToleranceSeconds);
    } catch (error) {
      if (error instanceof UnauthorizedError) throw error;
      throw new UnauthorizedError(`authorization: ${(error as Error).message}`);
    }
    const digest = new Bun.CryptoHasher("sha256").update(body).digest("base64");
    if (claims.sha256 !== digest) throw new UnauthorizedError("authorization: sha256 of the body does not match");
  };

  return {
    verifyBody,
    async receiveEvent(body, authorization) {
      // No token is a 401 before anything else; malformed JSON a 400 before the signature is checked.
      if (verifying) token(authorization);
      const json = parseJson(body);
      await verifyBody(body, authorization);
      try {
        return WebhookEvent.fromJson(json, { ignoreUnknownFields: true });
      } catch (error) {
        throw new BadRequestError(`body: not a LiveKit webhook event (${(error as Error).message})`, "body");
      }
    },
  };
}

/** The JSON the protocol's decoder takes. */
type EventJson = Parameters<typeof WebhookEvent.fromJson>[0];

function parseJson(body: string): EventJson {
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new BadRequestError(`body: malformed JSON (${(error as Error).message})`, "body");
  }
}
