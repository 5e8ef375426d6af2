// Every request body is read and parsed here, before any route or schema sees it. A body is
// bounded in bytes, and a JSON body in nesting depth and element count, with one linear scan
// before it is parsed: a 60 KB body of nested arrays costs microseconds to refuse, where
// parsing and validating it would hold the event loop for seconds and every caller behind it.
import { BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from "./errors";

/** Deeper than any body Switchboard takes (a LiveKit event nests about 5 levels). */
export const MAX_JSON_DEPTH = 32;
/** More values than any body Switchboard takes holds, far fewer than the body limit allows. */
export const MAX_JSON_ELEMENTS = 10_000;

/** The body as text, bounded in size whether or not Content-Length is honest. */
export async function readBody(request: Request, limit: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit);
  const text = await request.text();
  if (Buffer.byteLength(text) > limit) throw new PayloadTooLargeError(limit);
  return text;
}

/** JSON errors become a 400 naming the body; LiveKit's application/webhook+json stays text (its signature covers the bytes). */
export function parseBody(text: string, contentType: string): unknown {
  const type = contentType.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  const json = type === "application/json" || type.endsWith("+json");
  if (json && text.trim() !== "") assertJsonBounds(text);
  if (type === "application/webhook+json") return text;
  if (json) {
    if (text.trim() === "") throw new BadRequestError("body: empty, expected a JSON object", "body");
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BadRequestError(`body: malformed JSON (${(error as Error).message})`, "body");
    }
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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
