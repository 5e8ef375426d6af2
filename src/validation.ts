// Plain words for TypeBox's first complaint about a value, shared by the configuration and the
// HTTP answers: TypeBox says only "Expected union value" for a nullable or one-of field.
import { type ValueError, ValueErrorType } from "@sinclair/typebox/value";
import { NOT_STORABLE, STORABLE_TEXT_PATTERN } from "./text";

const TYPE_MISMATCH = /^Expected (string|number|integer|boolean|null|object|array)$/;

export function describeValueError(error: ValueError): string {
  const { pattern } = error.schema as { pattern?: string };
  if (error.type === ValueErrorType.StringPattern && pattern === STORABLE_TEXT_PATTERN) return NOT_STORABLE;
  const options = (error.schema as { anyOf?: { const?: unknown }[] }).anyOf ?? [];
  const allowed = options.flatMap((option) => (option.const === undefined ? [] : [option.const]));
  if (allowed.length > 0 && allowed.length === options.length) return `expected one of ${allowed.join(", ")}`;
  // Of a union's alternatives, the one whose type the value has tells what is wrong with it.
  for (const alternative of error.errors ?? []) {
    const [first] = alternative;
    if (first && !TYPE_MISMATCH.test(first.message)) return lowerFirst(first.message);
  }
  return error.message;
}

const lowerFirst = (text: string) => text.charAt(0).toLowerCase() + text.slice(1);
