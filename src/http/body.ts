// Every request body is read and parsed here, before any route or schema sees it. A body is
// bounded in bytes, and a JSON body in nesting depth and element count, with one linear scan
// before it is parsed: a 60 KB body of nested arrays costs microseconds to refuse, where
// parsing and validating it would hold the event loop for seconds and every caller behind it.
import { Elysia } from "elysia";
import { BadRequestError, HeadersTooLargeError, PayloadTooLargeError, UnsupportedMediaTypeError } from "../errors";

/**
 * The app's body reader: every request's headers checked and its body read and parsed once.
 * Signatures cover the exact bytes received, so the text is kept for the verifiers (rawBody).
 */
export function boundedBodies(maxBytes: number) {
  const rawBodies = new WeakMap<Request, string>();
  const plugin = new Elysia()
    .onRequest(({ request }) => assertHeadersFit(request.headers))
    .onParse({ as: "global" }, async ({ request, contentType }) => {
      const text = await readBody(request, maxBytes);
      rawBodies.set(request, text);
      return parseBody(text, contentType);
    });
  return { plugin, rawBody: (request: Request) => rawBodies.get(request) ?? "" };
}

/** Deeper than any body Switchboard takes (a LiveKit event nests about 5 levels). */
export const MAX_JSON_DEPTH = 32;
/** More values than any body Switchboard takes holds, far fewer than the body limit allows. */
export const MAX_JSON_ELEMENTS = 10_000;

/**
 * The body as text, read as a stream and abandoned past `limit` bytes, so a chunked body with no
 * Content-Length costs no more memory than an honest one. The server's own limit is set out of
 * the way (main.ts): it would answer 413 with an empty body before the app could say why.
 */
export async function readBody(request: Request, limit: number): Promise<string> {
  const length = request.headers.get("content-length");
  const declared = Number(length ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit);
  if (!request.body) return "";
  const bytes = hasFramedLength(request, length) ? await request.bytes() : await readStream(request.body, limit);
  // Only a Request built in-process can hold more than its Content-Length says.
  if (bytes.byteLength > limit) throw new PayloadTooLargeError(limit);
  try {
    return UTF8.decode(bytes);
  } catch {
    // Decoding leniently would store U+FFFD in place of the bad bytes: a value nobody sent.
    throw new BadRequestError("body: not valid UTF-8", "body");
  }
}

/**
 * A declared length is all the server reads of a request (HTTP framing), so the body can be read
 * whole, without a stream's per-chunk promises (about a tenth of a call's CPU). With
 * Transfer-Encoding the length does not bound the body: it is streamed.
 */
const hasFramedLength = (request: Request, length: string | null) =>
  length !== null && /^\d+$/.test(length) && !request.headers.has("transfer-encoding");

/** A body of no declared length, read chunk by chunk and abandoned past `limit` bytes. */
async function readStream(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      // The server discards the rest of what the client sends; the 413 still reaches it.
      reader.cancel().catch(() => {});
      throw new PayloadTooLargeError(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

// ignoreBOM keeps a leading byte-order mark: a signature covers the bytes as sent.
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Header bytes (names and values) a request may carry: far above what LiveKit or an admin client
 * sends. Bun refuses request heads over 16 KiB with an empty 431 of its own; the CLI raises
 * that to 64 KiB (--max-http-header-size in package.json, the shebang and the build) so that
 * this bound answers first, with a body that says what is wrong.
 */
export const MAX_HEADER_BYTES = 8 * 1024;

export function assertHeadersFit(headers: Headers): void {
  let size = 0;
  headers.forEach((value, name) => {
    size += name.length + value.length;
  });
  if (size > MAX_HEADER_BYTES) throw new HeadersTooLargeError(MAX_HEADER_BYTES);
}

/** JSON errors become a 400 naming the body; LiveKit's application/webhook+json stays text (its signature covers the bytes). */
export function parseBody(text: string, contentType: string): unknown {
  const type = contentType.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  const json = type === "application/json" || type.endsWith("+json");
  if (json && text.trim() !== "") assertJsonBounds(text);
  if (type === "application/webhook+json") return text;
  if (json) {
    if (text.trim() === "") throw new BadRequestError("body: empty, expected a JSON object", "body");
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new BadRequestError(`body: malformed JSON (${(error as Error).message})`, "body");
    }
    givePrintableForm(value);
    return value;
  }
  // Every endpoint takes JSON; `curl -d` without a content type deserves a clear answer.
  if (text.trim() !== "") throw new UnsupportedMediaTypeError(contentType);
  // null, not undefined: "handled, no body", so a route's own JSON parser does not re-read the stream.
  return null;
}

/** Counts brackets and commas outside strings; malformed JSON is left for JSON.parse to name. */
export function assertJsonBounds(text: string): void {
  let depth = 0;
  let elements = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > MAX_JSON_DEPTH) throw new BadRequestError(`body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`, "body");
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    } else if (c === COMMA && ++elements >= MAX_JSON_ELEMENTS) {
      throw new BadRequestError(`body: JSON holds more than ${MAX_JSON_ELEMENTS} values`, "body");
    }
  }
}

/**
 * An object whose own "toString" or "valueOf" key holds data cannot be turned into a string, and
 * Elysia's validator does exactly that when it describes a wrong value: a 400 would become a 500.
 * Such objects get a hidden (symbol, non-enumerable) way to print; their data is unchanged.
 */
function givePrintableForm(value: unknown): void {
  if (typeof value !== "object" || value === null) return;
  for (const inner of Object.values(value)) givePrintableForm(inner);
  if (Object.hasOwn(value, "toString") || Object.hasOwn(value, "valueOf")) {
    Object.defineProperty(value, Symbol.toPrimitive, { value: () => "[object Object]", enumerable: false });
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
