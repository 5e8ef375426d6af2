// A journal file's bytes: one line per entry, a checksum (16 hex digits of SHA-256 over the JSON),
// a space, the JSON. Lines are on disk (fdatasync) before an append resolves. A torn last line
// (the process died mid-write) fails its checksum and is skipped with a warning.
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import type { Logger } from "../logger";

export interface JournalEntry {
  kind: string;
  /** When it happened (ISO 8601): replay records it at this time, not at the time of replay. */
  at: string;
  data: unknown;
}

/** The entry's line, newline included; it is timed now. */
export function entryLine(kind: string, data: unknown): string {
  const json = JSON.stringify({ kind, at: new Date().toISOString(), data });
  return `${checksum(json)} ${json}\n`;
}

/** The file's entries in order; a line that fails its checksum is skipped with a warning. */
export function readEntries(path: string, logger: Logger): JournalEntry[] {
  const lines = readFileSync(path, "utf8").split("\n");
  const entries: JournalEntry[] = [];
  lines.forEach((line, index) => {
    if (line === "") return;
    const json = line.slice(17);
    if (line[16] === " " && checksum(json) === line.slice(0, 16)) {
      entries.push(JSON.parse(json) as JournalEntry);
      return;
    }
    const last = index === lines.length - 1; // no newline after it: the write was cut short
    logger.warn({ path, line: index + 1 }, last ? "journal: torn last line skipped" : "journal: corrupt line skipped");
  });
  return entries;
}

/** Writes all of `lines` and has them on disk before it resolves. */
export async function writeDurably(handle: FileHandle, lines: string): Promise<void> {
  // A write may take fewer bytes than asked (a nearly full disk) without failing: write the rest.
  const bytes = Buffer.from(lines);
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, offset);
    if (bytesWritten === 0) throw new Error("journal write made no progress (disk full?)");
    offset += bytesWritten;
  }
  await handle.datasync();
}

/** Has the directory's entries (a new file's name) on disk. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function checksum(json: string): string {
  return createHash("sha256").update(json).digest("hex").slice(0, 16);
}
