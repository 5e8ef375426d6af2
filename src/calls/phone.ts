// Phone numbers reach us in many shapes (E.164, national, tel: and sip: URIs);
// everything is stored and compared in E.164.
import { type CountryCode, parsePhoneNumberFromString } from "libphonenumber-js/max";
import type { NumberType } from "../db/schema";

/** What SIP trunks send when the caller withholds their number. */
const WITHHELD = new Set(["", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld"]);

/**
 * The E.164 form of a number, or null when there is none to be had (withheld, empty,
 * unparsable). National numbers are read in `region`.
 */
export function normalizePhoneNumber(raw: string | null | undefined, region: string): string | null {
  if (raw == null) return null;
  let value = raw.trim();
  // sip:+14155550100@host;user=phone and tel:+14155550100;ext=1 -> +14155550100
  value = value.replace(/^(sips?|tel):/i, "");
  value = value.split(/[@;]/, 1)[0] ?? "";
  if (WITHHELD.has(value.toLowerCase())) return null;
  const parsed = parsePhoneNumberFromString(value, region as CountryCode);
  return parsed?.isPossible() ? parsed.number : null;
}

/** LOCAL, TOLL_FREE or MOBILE, from the numbering plan of the number's country. */
export function numberTypeOf(e164: string): NumberType {
  const type = parsePhoneNumberFromString(e164)?.getType();
  if (type === "TOLL_FREE") return "TOLL_FREE";
  if (type === "MOBILE") return "MOBILE";
  return "LOCAL";
}
