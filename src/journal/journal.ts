// What the database could not take when it happened (a call's record, a LiveKit event about
// it) is appended here, on local disk, and written to the database once it answers again.
// An entry is on disk (fdatasync) before the caller's webhook is answered, so an answered call
// survives an outage, a crash and a restart. One line per entry: a checksum, a space, the JSON.
// A torn last line (the process died mid-write) fails its checksum and is skipped with a warning.
//
// Each process appends to files of its own under DATA_DIR/journal, each held with a lock while
// the process lives; a file whose lock is free belongs to a process that is gone, and whoever
// replays next adopts it. Replay relies on the database's unique keys, so replaying an entry
// twice, or the same call journaled by two processes, still ends in one record.
import { createHash, randomUUID } from "node:crypto";
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { tryLockFile } from "../lock-file";
import type { Logger } from "../logger";

export interface JournalEntry {
  kind: string;
  /** When it happened (ISO 8601): replay records it at this time, not at the time of replay. */
  at: string;
  data: unknown;
}

/** How each kind of entry is written to the database; a handler that throws anything but a permanent error stops the replay. */
export type ReplayHandlers = Record<string, (data: unknown, at: Date) => Promise<void>>;

export interface JournalStatus {
  /** Entries on disk not yet written to the database. */
  depth: number;
  /** Entries written to the database since start. */
  replayed: number;
  /** Entries the database refused for good (moved to REFUSED_FILE and logged). */
  refused: number;
  replaying: boolean;
  lastReplayAt: Date | null;
}

export interface Journal {
  /** Resolves once the entry is on disk. */
  append(kind: string, data: unknown): Promise<void>;
  /**
   * Writes every pending entry, in order, to the database. An entry the database refuses for good
   * (`isPermanent`) goes to REFUSED_FILE; any other failure stops the replay until the next one.
   */
  replay(handlers: ReplayHandlers, isPermanent: (error: unknown) => boolean): Promise<void>;
  status(): JournalStatus;
  close(): Promise<void>;
}

type CurrentFile = JournalFile & { handle: FileHandle; /** The write under way on it. */ busy: Promise<void> };

interface JournalFile {
  path: string;
  unlock: () => void;
  /** Entries in the file; and how many of them are in the database (kept in memory only: after a restart, replay starts over, harmlessly). */
  entries: number;
  done: number;
}

export function openJournal({ dir, logger }: { dir: string; logger: Logger }): Journal {
  mkdirSync(dir, { recursive: true });
  const sealed: JournalFile[] = [];
  let current: CurrentFile | null = null;
  let queue: { line: string; resolve: () => void; reject: (error: unknown) => void }[] = [];
  let flushing: Promise<void> | null = null;
  let replaying: Promise<void> | null = null;
  const stats = { replayed: 0, refused: 0, lastReplayAt: null as Date | null };

  let closed = false;
  const retiring = new Set<CurrentFile>();

  const openCurrent = async () => {
    const path = join(dir, `${String(Date.now()).padStart(15, "0")}-${process.pid}-${randomUUID().slice(0, 8)}.jsonl`);
    // Locked under a name no one adopts, then renamed (the lock follows the file): another process
    // must never find this file unlocked and take it for a dead process's journal.
    const creating = `${path}.new`;
    const unlock = tryLockFile(creating, { create: true });
    if (!unlock) throw new Error(`journal file ${creating} is locked by another process`);
    renameSync(creating, path);
    const handle = await open(path, "a");
    syncDirectory(dir); // the new file's name must survive a crash as well as its contents
    current = { path, unlock, handle, entries: 0, done: 0, busy: Promise.resolve() };
    return current;
  };
  // Group commit: entries queued while a write is on disk go out together in the next one.
  const flush = async () => {
    while (queue.length) {
      const batch = queue;
      queue = [];
      let file: CurrentFile | null = null;
      try {
        file = current ?? (await openCurrent());
        const writing = writeBatch(file.handle, batch.map((entry) => entry.line).join(""));
        file.busy = writing.catch(() => {});
        await writing;
        file.entries += batch.length;
        for (const entry of batch) entry.resolve();
      } catch (error) {
        logger.error({ err: error, dir }, "journal write failed");
        for (const entry of batch) entry.reject(error);
        // A write cut short may have left part of a line: no acknowledged entry may follow it there.
        if (file && current === file) {
          retire(takeCurrent()!).catch((retireError: unknown) => logger.error({ err: retireError }, "journal file not closed"));
        }
      }
    }
    flushing = null;
  };
  // The writer's file, taken from it at once: the next write opens a new one.
  const takeCurrent = () => {
    const file = current;
    current = null;
    return file;
  };
  // Closed once the write already under way on it is done; kept for replay if it holds entries.
  const retire = async (file: CurrentFile) => {
    retiring.add(file); // still counted in the depth while it closes
    try {
      await file.busy;
      await file.handle.close();
    } finally {
      retiring.delete(file);
      const { handle: _, busy: __, ...rest } = file;
      if (rest.entries) sealed.push(rest);
      else removeFile(rest);
    }
  };
  const seal = async () => {
    const file = takeCurrent();
    if (file) await retire(file);
  };
  const adoptOrphans = () => {
    const known = new Set([...sealed.map((f) => f.path), current?.path]);
    for (const name of readdirSync(dir).filter((n) => n.endsWith(".jsonl")).sort()) {
      const path = join(dir, name);
      if (known.has(path)) continue;
      // Not created if its owner removed it meanwhile; a live process's journal stays locked: it replays its own.
      const unlock = tryLockFile(path, { create: false });
      if (!unlock) continue;
      try {
        sealed.push({ path, unlock, entries: readEntries(path, logger).length, done: 0 });
      } catch (error) {
        unlock();
        logger.warn({ err: error, path }, "journal file not adopted");
      }
    }
    sealed.sort((a, b) => a.path.localeCompare(b.path));
  };
  const refuse = (entry: JournalEntry, error: unknown) => {
    stats.refused++;
    // Kept, not dropped: a person can look at it, mend it and write it by hand.
    appendFileSync(join(dir, REFUSED_FILE), `${JSON.stringify({ refused_at: new Date().toISOString(), entry })}\n`);
    logger.error({ err: error, entry, kept_in: REFUSED_FILE }, "journal entry refused by the database for good");
  };
  const replayFile = async (file: JournalFile, handlers: ReplayHandlers, isPermanent: (error: unknown) => boolean) => {
    let entries: JournalEntry[];
    try {
      entries = readEntries(file.path, logger);
    } catch (error) {
      // Gone (removed by hand?): nothing left to replay from it, and nothing behind it may wait.
      logger.error({ err: error, path: file.path }, "journal file unreadable: skipped");
      file.unlock();
      sealed.splice(sealed.indexOf(file), 1);
      return true;
    }
    for (; file.done < entries.length; file.done++) {
      const entry = entries[file.done]!;
      const handler = handlers[entry.kind];
      try {
        if (!handler) throw new Error(`no replay handler for journal entry kind "${entry.kind}"`);
        await handler(entry.data, new Date(entry.at));
        stats.replayed++;
      } catch (error) {
        // Anything not known to be final is tried again later: an entry is never dropped on a guess.
        if (handler && !isPermanent(error)) return false;
        refuse(entry, error);
      }
    }
    removeFile(file);
    sealed.splice(sealed.indexOf(file), 1);
    return true;
  };
  const replayAll = async (handlers: ReplayHandlers, isPermanent: (error: unknown) => boolean) => {
    await seal();
    adoptOrphans();
    const before = depthOf(sealed);
    if (!before) return;
    logger.info({ depth: before }, "journal replay started");
    for (const file of [...sealed]) {
      if (closed || !(await replayFile(file, handlers, isPermanent))) break;
    }
    stats.lastReplayAt = new Date();
    const depth = depthOf(sealed) + (current?.entries ?? 0);
    logger.info({ replayed: before - depthOf(sealed), depth }, depth ? "journal replay paused: the database is not taking it yet" : "journal replayed");
  };

  adoptOrphans();
  if (sealed.length) logger.info({ depth: depthOf(sealed), files: sealed.length }, "journal entries from an earlier run found");
  return {
    append(kind, data) {
      if (closed) return Promise.reject(new Error("journal closed"));
      const json = JSON.stringify({ kind, at: new Date().toISOString(), data });
      return new Promise<void>((resolve, reject) => {
        queue.push({ line: `${checksum(json)} ${json}\n`, resolve, reject });
        flushing ??= flush();
      });
    },
    replay(handlers, isPermanent) {
      if (closed) return Promise.resolve();
      replaying ??= replayAll(handlers, isPermanent).finally(() => {
        replaying = null;
      });
      return replaying;
    },
    status: () => ({
      depth: depthOf([...sealed, ...retiring]) + (current?.entries ?? 0) + queue.length,
      ...stats,
      replaying: replaying !== null,
    }),
    async close() {
      closed = true;
      await replaying?.catch(() => {});
      while (flushing) await flushing;
      const file = takeCurrent();
      if (file) await retire(file);
      for (const file of sealed) file.unlock();
      sealed.length = 0;
    },
  };
}

async function writeBatch(handle: FileHandle, lines: string) {
  // A write may take fewer bytes than asked (a nearly full disk) without failing: write the rest.
  const bytes = Buffer.from(lines);
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, offset);
    if (bytesWritten === 0) throw new Error("journal write made no progress (disk full?)");
    offset += bytesWritten;
  }
  await handle.datasync();
}

/** Entries the database refused for good, one JSON line each, beside the journal files. */
export const REFUSED_FILE = "refused.log";

const depthOf = (files: JournalFile[]) => files.reduce((sum, file) => sum + file.entries - file.done, 0);

function checksum(json: string): string {
  return createHash("sha256").update(json).digest("hex").slice(0, 16);
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

function removeFile(file: Pick<JournalFile, "path" | "unlock">) {
  unlinkSync(file.path);
  file.unlock();
}

function syncDirectory(dir: string) {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replays the journal whenever it may succeed: now, each time the database comes back, soon
 * after an entry is appended while the database is up (it was only slow), and periodically.
 */
export function keepReplaying(
  journal: Journal,
  options: {
    handlers: ReplayHandlers;
    isPermanent: (error: unknown) => boolean;
    available: () => boolean;
    onRecovered: (listener: () => void) => void;
    logger: Logger;
    intervalMs: number;
  },
): { stop(): void } {
  // Also with nothing of its own to replay: a process that died may have left a journal to adopt.
  const run = () => {
    if (!options.available()) return;
    journal
      .replay(options.handlers, options.isPermanent)
      .catch((error: unknown) => options.logger.error({ err: error }, "journal replay failed"));
  };
  options.onRecovered(run);
  const timer = setInterval(run, options.intervalMs);
  timer.unref?.();
  run();
  return { stop: () => clearInterval(timer) };
}
