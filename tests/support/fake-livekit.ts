// A stand-in for the LiveKit server's Twirp API on a loopback port, for the parts Switchboard calls:
// AgentDispatchService (CreateDispatch, ListDispatch, DeleteDispatch) and the SIP service's inbound
// trunk and dispatch rule provisioning.
//
// Wire facts it mirrors (livekit-server-sdk 2.19.2, TwirpRPC.js / ServiceBase.js):
// - POST {url}/twirp/livekit.<Service>/<Method>, body = JSON.stringify(Request.toJson()),
//   Content-Type "application/json;charset=UTF-8"; the SDK never sends protobuf binary.
// - Authorization: "Bearer <JWT>" signed HS256 with the API secret, iss = API key, ttl 10 min.
//   AgentDispatchClient puts video { roomAdmin: true, room: <room> }; SipClient puts sip { admin: true }.
// - A 2xx answer is read with response.json() and decoded with Response.fromJson(..., ignoreUnknownFields).
// - Errors: the SDK reads {"code","msg","meta"} only when Content-Type is exactly "application/json",
//   and throws TwirpError(statusText, msg, status, code).
// - No failover to other regions for a host that is not *.livekit.cloud, so one request per call.
//
// Like the real server (livekit/livekit pkg/service), a missing token or a token without the needed
// grant is answered 401 {"code":"unauthenticated"}; so is a token that fails verification.
import {
  AgentDispatch,
  AgentDispatchState,
  CreateAgentDispatchRequest,
  CreateSIPDispatchRuleRequest,
  CreateSIPInboundTrunkRequest,
  DeleteAgentDispatchRequest,
  DeleteSIPDispatchRuleRequest,
  DeleteSIPTrunkRequest,
  ListAgentDispatchRequest,
  ListAgentDispatchResponse,
  ListSIPDispatchRuleRequest,
  ListSIPDispatchRuleResponse,
  ListSIPInboundTrunkRequest,
  ListSIPInboundTrunkResponse,
  type ListUpdate,
  type Pagination,
  SIPDispatchRuleInfo,
  SIPInboundTrunkInfo,
  SIPTrunkInfo,
  UpdateSIPDispatchRuleRequest,
  UpdateSIPInboundTrunkRequest,
} from "@livekit/protocol";
import { type ClaimGrants, TokenVerifier } from "livekit-server-sdk";

// ---------------------------------------------------------------------------------------------
// Types

/** Twirp methods the fake implements. */
export type FakeLiveKitMethod =
  | "CreateDispatch"
  | "ListDispatch"
  | "DeleteDispatch"
  | "ListSIPInboundTrunk"
  | "CreateSIPInboundTrunk"
  | "UpdateSIPInboundTrunk"
  | "DeleteSIPTrunk"
  | "ListSIPDispatchRule"
  | "CreateSIPDispatchRule"
  | "UpdateSIPDispatchRule"
  | "DeleteSIPDispatchRule";

/** One request the fake received, whatever its outcome. */
export interface RecordedCall {
  /** Twirp service, e.g. "AgentDispatchService" or "SIP". */
  service: string;
  /** Twirp method, e.g. "CreateDispatch". */
  method: string;
  /** The decoded request message (e.g. a CreateAgentDispatchRequest); undefined when the body did not decode. */
  request: any;
  /** When the request arrived. */
  at: Date;
  /** HTTP status the fake answered with. */
  status: number;
  /** Twirp error code when status is not 200. */
  errorCode?: string;
  /** Verified JWT claims, when the token verified. */
  grants?: ClaimGrants;
  /** The raw Authorization header. */
  authorization: string | null;
}

export interface FailureSpec {
  status?: number;
  /** Twirp error code; defaults from the status (503 unavailable, 500 internal, 429 resource_exhausted, ...). */
  code?: string;
  msg?: string;
}

export interface FakeLiveKitOptions {
  apiKey: string;
  apiSecret: string;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
}

export interface FakeLiveKit {
  /** http://127.0.0.1:PORT — pass to AgentDispatchClient / SipClient. */
  readonly url: string;
  readonly port: number;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Whether setDown(true) is in effect. */
  readonly down: boolean;
  /** Every request received (optionally only those of one method), oldest first. Includes failed ones; see `status`. */
  calls(method?: FakeLiveKitMethod | string): RecordedCall[];
  /** Answer the next `n` calls of `method` (default 1) with a Twirp error, HTTP 503 "unavailable" unless told. */
  failNext(method: FakeLiveKitMethod | string, n?: number, status?: number | FailureSpec): void;
  /**
   * Carry out the next `n` calls of `method` (default 1) as usual but answer them only after `ms`:
   * a slow LiveKit whose CreateDispatch lands while the client has already given up.
   */
  delayNext(method: FakeLiveKitMethod | string, ms: number, n?: number): void;
  /** true: stop listening, so connections are refused; false: listen again on the same port. */
  setDown(down: boolean): Promise<void>;
  /** Current dispatches (optionally for one room). */
  dispatches(room?: string): AgentDispatch[];
  /** Current inbound trunks. */
  trunks(): SIPInboundTrunkInfo[];
  /** Current dispatch rules. */
  rules(): SIPDispatchRuleInfo[];
  /** Forget state, recorded calls and pending failures (the server keeps running). */
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/** LiveKit-style id: prefix + 12 random characters (like guid.New in livekit/protocol). */
export function livekitId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let out = prefix;
  for (const b of bytes) out += ID_ALPHABET[b % ID_ALPHABET.length];
  return out;
}

const CODE_BY_STATUS: Record<number, string> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  408: "deadline_exceeded",
  409: "already_exists",
  412: "failed_precondition",
  429: "resource_exhausted",
  500: "internal",
  501: "unimplemented",
  503: "unavailable",
  504: "deadline_exceeded",
};

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  409: "Conflict",
  412: "Precondition Failed",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

class TwirpFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    msg: string,
  ) {
    super(msg);
  }
}

function twirpError(status: number, code: string, msg: string): Response {
  // Content-Type must be exactly "application/json" for the SDK to read code and msg.
  return new Response(JSON.stringify({ code, msg }), {
    status,
    statusText: STATUS_TEXT[status] ?? "",
    headers: { "content-type": "application/json" },
  });
}

function applyListUpdate(current: string[], update: ListUpdate | undefined): string[] {
  if (!update) return current;
  if (update.clear) return [];
  let next = update.set.length > 0 ? [...update.set] : [...current];
  if (update.remove.length > 0) next = next.filter((v) => !update.remove.includes(v));
  for (const v of update.add) if (!next.includes(v)) next.push(v);
  return next;
}

function paginate<T>(items: T[], idOf: (t: T) => string, page: Pagination | undefined): T[] {
  let out = [...items].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
  if (page?.afterId) out = out.filter((t) => idOf(t) > page.afterId);
  if (page?.limit) out = out.slice(0, page.limit);
  return out;
}

/**
 * How LiveKit's SIP list calls select: the ids asked for (in that order; the real server sends
 * null for a missing id, which JSON lists of messages cannot carry through protobuf-es, so
 * missing ones are left out), else a page of all; then, when a filter is given, the items that
 * match it plus wildcards (items with an empty list match everything).
 */
function listSelection<T>(
  store: Map<string, T>,
  request: { ids: string[]; page: Pagination | undefined; filter: string[] },
  idOf: (item: T) => string,
  keysOf: (item: T) => string[],
): T[] {
  let items =
    request.ids.length > 0
      ? request.ids.map((id) => store.get(id)).filter((item) => item !== undefined)
      : paginate([...store.values()], idOf, request.page);
  if (request.filter.length > 0) {
    items = items.filter((item) => keysOf(item).length === 0 || keysOf(item).some((key) => request.filter.includes(key)));
  }
  return items;
}

/** The part of a protobuf-es message the fake uses. */
interface Message {
  toJsonString(): string;
  toBinary(): Uint8Array;
}

type AnyMessageType = {
  fromJson(json: never, options?: { ignoreUnknownFields?: boolean }): Message;
  fromBinary(bytes: Uint8Array): Message;
};

interface Route {
  service: "AgentDispatchService" | "SIP";
  request: AnyMessageType;
  handle(req: any, grants: ClaimGrants): Message;
  /** Room the token must be scoped to (dispatch calls), or undefined for SIP admin calls. */
  room?(req: any): string;
}

// ---------------------------------------------------------------------------------------------

/** Start the fake on 127.0.0.1 (a free port unless `port` is given). */
export async function startFakeLiveKit(options: FakeLiveKitOptions): Promise<FakeLiveKit> {
  const { apiKey, apiSecret } = options;
  const verifier = new TokenVerifier(apiKey, apiSecret);

  const dispatchesByRoom = new Map<string, AgentDispatch[]>();
  const trunks = new Map<string, SIPInboundTrunkInfo>();
  const rules = new Map<string, SIPDispatchRuleInfo>();
  const recorded: RecordedCall[] = [];
  const failures = new Map<string, Array<{ status: number; code: string; msg: string }>>();
  const delays = new Map<string, number[]>();

  const notFound = (what: string) => new TwirpFailure(404, "not_found", `${what} not found`);
  const invalid = (msg: string) => new TwirpFailure(400, "invalid_argument", msg);

  const routes: Record<FakeLiveKitMethod, Route> = {
    // ---- AgentDispatchService ----
    CreateDispatch: {
      service: "AgentDispatchService",
      request: CreateAgentDispatchRequest,
      room: (req: CreateAgentDispatchRequest) => req.room,
      handle(req: CreateAgentDispatchRequest) {
        if (!req.room) throw invalid("room is required");
        const dispatch = new AgentDispatch({
          id: livekitId("AD_"),
          agentName: req.agentName,
          room: req.room,
          metadata: req.metadata,
          restartPolicy: req.restartPolicy,
          deployment: req.deployment,
          attributes: { ...req.attributes },
          // The real server stamps time.Now().UnixNano().
          state: new AgentDispatchState({ createdAt: BigInt(Date.now()) * 1_000_000n }),
        });
        const list = dispatchesByRoom.get(req.room) ?? [];
        list.push(dispatch);
        dispatchesByRoom.set(req.room, list);
        return dispatch.clone();
      },
    },
    ListDispatch: {
      service: "AgentDispatchService",
      request: ListAgentDispatchRequest,
      room: (req: ListAgentDispatchRequest) => req.room,
      handle(req: ListAgentDispatchRequest) {
        let list = dispatchesByRoom.get(req.room) ?? [];
        if (req.dispatchId) list = list.filter((d) => d.id === req.dispatchId);
        return new ListAgentDispatchResponse({ agentDispatches: list.map((d) => d.clone()) });
      },
    },
    DeleteDispatch: {
      service: "AgentDispatchService",
      request: DeleteAgentDispatchRequest,
      room: (req: DeleteAgentDispatchRequest) => req.room,
      handle(req: DeleteAgentDispatchRequest) {
        const list = dispatchesByRoom.get(req.room) ?? [];
        const index = list.findIndex((d) => d.id === req.dispatchId);
        if (index < 0) throw notFound(`dispatch ${req.dispatchId}`);
        const [removed] = list.splice(index, 1);
        const out = (removed as AgentDispatch).clone();
        out.state ??= new AgentDispatchState();
        out.state.deletedAt = BigInt(Date.now()) * 1_000_000n;
        return out;
      },
    },

    // ---- SIP: inbound trunks ----
    ListSIPInboundTrunk: {
      service: "SIP",
      request: ListSIPInboundTrunkRequest,
      handle(req: ListSIPInboundTrunkRequest) {
        const items = listSelection(
          trunks,
          { ids: req.trunkIds, page: req.page, filter: req.numbers },
          (t) => t.sipTrunkId,
          (t) => t.numbers,
        );
        return new ListSIPInboundTrunkResponse({ items: items.map((t) => t.clone()) });
      },
    },
    CreateSIPInboundTrunk: {
      service: "SIP",
      request: CreateSIPInboundTrunkRequest,
      handle(req: CreateSIPInboundTrunkRequest) {
        if (!req.trunk) throw invalid("trunk is required");
        if (req.trunk.sipTrunkId) throw invalid("trunk ID must not be set");
        const trunk = req.trunk.clone();
        trunk.sipTrunkId = livekitId("ST_");
        trunks.set(trunk.sipTrunkId, trunk);
        return trunk.clone();
      },
    },
    UpdateSIPInboundTrunk: {
      service: "SIP",
      request: UpdateSIPInboundTrunkRequest,
      handle(req: UpdateSIPInboundTrunkRequest) {
        const existing = trunks.get(req.sipTrunkId);
        if (!existing) throw notFound(`SIP trunk ${req.sipTrunkId}`);
        let next: SIPInboundTrunkInfo;
        switch (req.action.case) {
          case "replace":
            next = req.action.value.clone();
            break;
          case "update": {
            const u = req.action.value;
            next = existing.clone();
            next.numbers = applyListUpdate(next.numbers, u.numbers);
            next.allowedAddresses = applyListUpdate(next.allowedAddresses, u.allowedAddresses);
            next.allowedNumbers = applyListUpdate(next.allowedNumbers, u.allowedNumbers);
            if (u.authUsername !== undefined) next.authUsername = u.authUsername;
            if (u.authPassword !== undefined) next.authPassword = u.authPassword;
            if (u.authRealm !== undefined) next.authRealm = u.authRealm;
            if (u.name !== undefined) next.name = u.name;
            if (u.metadata !== undefined) next.metadata = u.metadata;
            if (u.mediaEncryption !== undefined) next.mediaEncryption = u.mediaEncryption;
            if (u.media !== undefined) next.media = u.media.clone();
            break;
          }
          default:
            throw invalid("missing or unsupported update action");
        }
        next.sipTrunkId = existing.sipTrunkId;
        trunks.set(next.sipTrunkId, next);
        return next.clone();
      },
    },
    DeleteSIPTrunk: {
      service: "SIP",
      request: DeleteSIPTrunkRequest,
      handle(req: DeleteSIPTrunkRequest) {
        const existing = trunks.get(req.sipTrunkId);
        if (!existing) throw notFound(`SIP trunk ${req.sipTrunkId}`);
        trunks.delete(req.sipTrunkId);
        // DeleteSIPTrunk answers the legacy SIPTrunkInfo message.
        return new SIPTrunkInfo({
          sipTrunkId: existing.sipTrunkId,
          name: existing.name,
          metadata: existing.metadata,
          inboundNumbers: [...existing.numbers],
          inboundAddresses: [...existing.allowedAddresses],
        });
      },
    },

    // ---- SIP: dispatch rules ----
    ListSIPDispatchRule: {
      service: "SIP",
      request: ListSIPDispatchRuleRequest,
      handle(req: ListSIPDispatchRuleRequest) {
        const items = listSelection(
          rules,
          { ids: req.dispatchRuleIds, page: req.page, filter: req.trunkIds },
          (r) => r.sipDispatchRuleId,
          (r) => r.trunkIds,
        );
        return new ListSIPDispatchRuleResponse({ items: items.map((r) => r.clone()) });
      },
    },
    CreateSIPDispatchRule: {
      service: "SIP",
      request: CreateSIPDispatchRuleRequest,
      handle(req: CreateSIPDispatchRuleRequest) {
        const rule = req.dispatchRule
          ? req.dispatchRule.clone()
          : new SIPDispatchRuleInfo({
              rule: req.rule?.clone(),
              trunkIds: [...req.trunkIds],
              hidePhoneNumber: req.hidePhoneNumber,
              inboundNumbers: [...req.inboundNumbers],
              name: req.name,
              metadata: req.metadata,
              attributes: { ...req.attributes },
              roomPreset: req.roomPreset,
              roomConfig: req.roomConfig?.clone(),
            });
        if (!rule.rule || rule.rule.rule.case === undefined) throw invalid("dispatch rule is required");
        if (rule.sipDispatchRuleId) throw invalid("rule ID must not be set");
        rule.sipDispatchRuleId = livekitId("SDR_");
        rules.set(rule.sipDispatchRuleId, rule);
        return rule.clone();
      },
    },
    UpdateSIPDispatchRule: {
      service: "SIP",
      request: UpdateSIPDispatchRuleRequest,
      handle(req: UpdateSIPDispatchRuleRequest) {
        const existing = rules.get(req.sipDispatchRuleId);
        if (!existing) throw notFound(`SIP dispatch rule ${req.sipDispatchRuleId}`);
        let next: SIPDispatchRuleInfo;
        switch (req.action.case) {
          case "replace":
            next = req.action.value.clone();
            break;
          case "update": {
            const u = req.action.value;
            next = existing.clone();
            next.trunkIds = applyListUpdate(next.trunkIds, u.trunkIds);
            if (u.rule !== undefined) next.rule = u.rule.clone();
            if (u.name !== undefined) next.name = u.name;
            if (u.metadata !== undefined) next.metadata = u.metadata;
            if (Object.keys(u.attributes).length > 0) next.attributes = { ...u.attributes };
            if (u.mediaEncryption !== undefined) next.mediaEncryption = u.mediaEncryption;
            if (u.media !== undefined) next.media = u.media.clone();
            break;
          }
          default:
            throw invalid("missing or unsupported update action");
        }
        next.sipDispatchRuleId = existing.sipDispatchRuleId;
        rules.set(next.sipDispatchRuleId, next);
        return next.clone();
      },
    },
    DeleteSIPDispatchRule: {
      service: "SIP",
      request: DeleteSIPDispatchRuleRequest,
      handle(req: DeleteSIPDispatchRuleRequest) {
        const existing = rules.get(req.sipDispatchRuleId);
        if (!existing) throw notFound(`SIP dispatch rule ${req.sipDispatchRuleId}`);
        rules.delete(req.sipDispatchRuleId);
        return existing.clone();
      },
    },
  };

  async function handle(httpReq: Request): Promise<Response> {
    const at = new Date();
    const path = new URL(httpReq.url).pathname;
    const match = /^\/twirp\/livekit\.([A-Za-z]+)\/([A-Za-z]+)$/.exec(path);
    const authorization = httpReq.headers.get("authorization");
    const record: RecordedCall = {
      service: match?.[1] ?? "",
      method: match?.[2] ?? path,
      request: undefined,
      at,
      status: 0,
      authorization,
    };
    recorded.push(record);
    const fail = (status: number, code: string, msg: string) => {
      record.status = status;
      record.errorCode = code;
      return twirpError(status, code, msg);
    };

    if (httpReq.method !== "POST") return fail(404, "bad_route", `unsupported method ${httpReq.method} ${path}`);
    const route = match ? routes[match[2] as FakeLiveKitMethod] : undefined;
    if (!match || !route || route.service !== match[1]) return fail(404, "bad_route", `no handler for path "${path}"`);

    // Decode the request as JSON (what the SDK sends) or protobuf binary.
    const contentType = (httpReq.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    const binary = contentType === "application/protobuf";
    if (!binary && contentType !== "application/json") {
      return fail(404, "bad_route", `unexpected Content-Type: "${httpReq.headers.get("content-type") ?? ""}"`);
    }
    try {
      if (binary) {
        record.request = route.request.fromBinary(new Uint8Array(await httpReq.arrayBuffer()));
      } else {
        const text = await httpReq.text();
        // Twirp servers discard unknown fields.
        record.request = route.request.fromJson(JSON.parse(text || "{}") as never, { ignoreUnknownFields: true });
      }
    } catch (err) {
      return fail(400, "malformed", `failed to parse request json: ${(err as Error).message}`);
    }

    // Injected failures come before auth: they stand for a proxy or an overloaded server.
    const queue = failures.get(record.method);
    const injected = queue?.shift();
    if (queue && queue.length === 0) failures.delete(record.method);
    if (injected) return fail(injected.status, injected.code, injected.msg);

    // Authentication, as livekit/livekit's APIKeyAuthMiddleware + Ensure*Permission do.
    if (!authorization) return fail(401, "unauthenticated", "permissions denied");
    if (!authorization.startsWith("Bearer ")) {
      return fail(401, "unauthenticated", "invalid authorization header. Must start with Bearer ");
    }
    let grants: ClaimGrants;
    try {
      grants = await verifier.verify(authorization.slice("Bearer ".length));
    } catch (err) {
      return fail(401, "unauthenticated", `invalid token, error: ${(err as Error).message}`);
    }
    record.grants = grants;
    if (route.room) {
      const room = route.room(record.request);
      if (!grants.video?.roomAdmin || grants.video.room !== room) return fail(401, "unauthenticated", "permissions denied");
    } else if (!grants.sip?.admin) {
      return fail(401, "unauthenticated", "permissions denied");
    }

    let result: Message;
    try {
      result = route.handle(record.request, grants);
    } catch (err) {
      if (err instanceof TwirpFailure) return fail(err.status, err.code, err.message);
      return fail(500, "internal", (err as Error).message);
    }
    record.status = 200;
    if (binary) {
      return new Response(result.toBinary(), { headers: { "content-type": "application/protobuf" } });
    }
    return new Response(result.toJsonString(), { headers: { "content-type": "application/json" } });
  }

  const handleWithDelay = async (httpReq: Request) => {
    const method = /\/([A-Za-z]+)$/.exec(new URL(httpReq.url).pathname)?.[1] ?? "";
    const delay = delays.get(method)?.shift();
    const response = await handle(httpReq);
    if (delay) await Bun.sleep(delay);
    return response;
  };
  const listen = (port: number) => Bun.serve({ hostname: "127.0.0.1", port, fetch: handleWithDelay, idleTimeout: 60 });
  let server: ReturnType<typeof listen> | undefined = listen(options.port ?? 0);
  const port = server.port as number;
  const url = `http://127.0.0.1:${port}`;

  const fake: FakeLiveKit = {
    url,
    port,
    apiKey,
    apiSecret,
    get down() {
      return server === undefined;
    },
    calls(method) {
      return method === undefined ? [...recorded] : recorded.filter((c) => c.method === method);
    },
    delayNext(method, ms, n = 1) {
      const queue = delays.get(method) ?? [];
      for (let i = 0; i < n; i++) queue.push(ms);
      delays.set(method, queue);
    },
    failNext(method, n = 1, status = 503) {
      const spec: FailureSpec = typeof status === "number" ? { status } : status;
      const code = spec.code ?? CODE_BY_STATUS[spec.status ?? 503] ?? "unknown";
      const entry = {
        status: spec.status ?? 503,
        code,
        msg: spec.msg ?? `injected failure (${code})`,
      };
      const queue = failures.get(method) ?? [];
      for (let i = 0; i < n; i++) queue.push(entry);
      failures.set(method, queue);
    },
    async setDown(down) {
      if (down) {
        if (!server) return;
        const s = server;
        server = undefined;
        await s.stop(true);
      } else {
        if (server) return;
        server = listen(port);
      }
    },
    dispatches(room) {
      const all = room === undefined ? [...dispatchesByRoom.values()].flat() : (dispatchesByRoom.get(room) ?? []);
      return all.map((d) => d.clone());
    },
    trunks() {
      return [...trunks.values()].map((t) => t.clone());
    },
    rules() {
      return [...rules.values()].map((r) => r.clone());
    },
    reset() {
      delays.clear();
      dispatchesByRoom.clear();
      trunks.clear();
      rules.clear();
      recorded.length = 0;
      failures.clear();
    },
    async close() {
      const s = server;
      server = undefined;
      if (s) await s.stop(true);
    },
  };
  return fake;
}
