// What the database could not take when it happened (a call's record, a LiveKit event about
// it) is appended here, on local disk, and written to the database once it answers again.
// An entry is on disk (fdatasync) before the caller's webhook is answered, so an answered call
// survives an outage, a crash and a restart. The files' format is in entry-file.ts.
//
// Each process appends to files of its own under DATA_DIR/journal, each held with a lock while
// the process lives; a file whose lock is free belongs to a process that is gone, and whoever
// replays next adopts it. Replay relies on the database's unique keys, so replaying an entry
// twice, or the same call journaled by two processes, still ends in one record.
import { randomUUID } from "node:crypto";
import { appendFileSync, mkdirSync, readdirSync, renameSync, unlinkSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { tryLockFile } from "../lock-file";
import type { Logger } from "../logger";
import { entryLine, type JournalEntry, readEntries, syncDirectory, writeDurably } from "./entry-file";

export { readEntries } from "./entry-file";

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

interface JournalFile {
  path: string;
  unlock: () => void;
  /** Entries in the file; and how many of them are in the database (kept in memory only: after a restart, replay starts over, harmlessly). */
  entries: number;
  replayed: number;
}

/** The file this process appends to, open, with the write under way on it. */
type CurrentFile = JournalFile & { handle: FileHandle; pendingWrite: Promise<void> };

/** An entry's line waiting for the next write, with its appender's promise. */
type QueuedLine = { line: string; resolve: () => void; reject: (error: unknown) => void };

/** One replay's handlers, and how it tells an error that no retry can mend. */
type Replay = { handlers: ReplayHandlers; isPermanent: (error: unknown) => boolean };

export function openJournal({ dir, logger }: { dir: string; logger: Logger }): Journal {
  return new FileJournal(dir, logger);
}

/**
 * The journal in `dir`. Appends go, in groups, to this process's current file; replay seals it
 * (the next append opens a new one), adopts files of processes that are gone, and writes the
 * sealed files to the database oldest first, removing each once all of it is there.
 */
class FileJournal implements Journal {
  /** Files no longer appended to, oldest first: this process's own and those adopted. */
  private readonly sealed: JournalFile[] = [];
  private current: CurrentFile | null = null;
  /** Files taken from the writer that are still closing: counted in the depth meanwhile. */
  private readonly retiring = new Set<CurrentFile>();
  /** Lines appended while a write is on disk: they go out together in the next one (group commit). */
  private queue: QueuedLine[] = [];
  private flushing: Promise<void> | null = null;
  private replaying: Promise<void> | null = null;
  private closed = false;
  private replayedCount = 0;
  private refusedCount = 0;
  private lastReplayAt: Date | null = null;

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {
    mkdirSync(dir, { recursive: true });
    this.adoptOrphans();
    if (this.sealed.length) logger.info({ depth: depthOf(this.sealed), files: this.sealed.length }, "journal entries from an earlier run found");
  }

  append(kind: string, data: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new Error("journal closed"));
    const line = entryLine(kind, data);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  replay(handlers: ReplayHandlers, isPermanent: (error: unknown) => boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.replaying ??= this.replayAll({ handlers, isPermanent }).finally(() => {
      this.replaying = null;
    });
    return this.replaying;
  }

  status(): JournalStatus {
    return {
      depth: depthOf([...this.sealed, ...this.retiring]) + (this.current?.entries ?? 0) + this.queue.length,
      replayed: this.replayedCount,
      refused: this.refusedCount,
      lastReplayAt: this.lastReplayAt,
      replaying: this.replaying !== null,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.replaying?.catch(() => {});
    while (this.flushing) await this.flushing;
    await this.seal();
    for (const file of this.sealed) file.unlock();
    this.sealed.length = 0;
  }

  private async flush(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      await this.writeBatch(batch);
    }
    this.flushing = null;
  }

  /** Writes the lines to the current file and answers their appenders. */
  private async writeBatch(batch: QueuedLine[]): Promise<void> {
    let file: CurrentFile | null = null;
    try {
      file = this.current ?? (await this.openCurrent());
      const writing = writeDurably(file.handle, batch.map((entry) => entry.line).join(""));
      file.pendingWrite = writing.catch(() => {});
      await writing;
      file.entries += batch.length;
      for (const entry of batch) entry.resolve();
    } catch (error) {
      this.logger.error({ err: error, dir: this.dir }, "journal write failed");
      for (const entry of batch) entry.reject(error);
      // A write cut short may have left part of a line: no acknowledged entry may follow it there.
      if (file && this.current === file) {
        this.retire(this.takeCurrent()!).catch((retireError: unknown) => this.logger.error({ err: retireError }, "journal file not closed"));
      }
    }
  }

  private async openCurrent(): Promise<CurrentFile> {
    const path = join(this.dir, `${String(Date.now()).padStart(15, "0")}-${process.pid}-${randomUUID().slice(0, 8)}.jsonl`);
    // Locked under a name no one adopts, then renamed (the lock follows the file): another process
    // must never find this file unlocked and take it for a dead process's journal.
    const creating = `${path}.new`;
    const unlock = tryLockFile(creating, { create: true });
    if (!unlock) throw new Error(`journal file ${creating} is locked by another process`);
    renameSync(creating, path);
    const handle = await open(path, "a");
    syncDirectory(this.dir); // the new file's name must survive a crash as well as its contents
    this.current = { path, unlock, handle, entries: 0, replayed: 0, pendingWrite: Promise.resolve() };
    return this.current;
  }

  /** The writer's file, taken from it at once: the next write opens a new one. */
  private takeCurrent(): CurrentFile | null {
    const file = this.current;
    this.current = null;
    return file;
  }

  /** Closed once the write already under way on it is done; kept for replay if it holds entries. */
  private async retire(file: CurrentFile): Promise<void> {
    this.retiring.add(file);
    try {
      await file.pendingWrite;
      await file.handle.close();
    } finally {
      this.retiring.delete(file);
      const { handle: _, pendingWrite: __, ...closedFile } = file;
      if (closedFile.entries) this.sealed.push(closedFile);
      else removeFile(closedFile);
    }
  }

  private async seal(): Promise<void> {
    const file = this.takeCurrent();
    if (file) await this.retire(file);
  }

  private async replayAll(replay: Replay): Promise<void> {
    await this.seal();
    this.adoptOrphans();
    const before = depthOf(this.sealed);
    if (!before) return;
    this.logger.info({ depth: before }, "journal replay started");
    for (const file of [...this.sealed]) {
      if (this.closed || !(await this.replayFile(file, replay))) break;
    }
    this.lastReplayAt = new Date();
    const depth = depthOf(this.sealed) + (this.current?.entries ?? 0);
    const message = depth ? "journal replay paused: the database is not taking it yet" : "journal replayed";
    this.logger.info({ replayed: before - depthOf(this.sealed), depth }, message);
  }

  /** Takes over the files of processes that are gone; a live process's journal stays locked: it replays its own. */
  private adoptOrphans(): void {
    const known = new Set([...this.sealed.map((f) => f.path), this.current?.path]);
    for (const name of readdirSync(this.dir).filter((n) => n.endsWith(".jsonl")).sort()) {
      const path = join(this.dir, name);
      if (!known.has(path)) this.adopt(path);
    }
    this.sealed.sort((a, b) => a.path.localeCompare(b.path));
  }

  private adopt(path: string): void {
    // Not created if its owner removed it meanwhile.
    const unlock = tryLockFile(path, { create: false });
    if (!unlock) return;
    try {
      this.sealed.push({ path, unlock, entries: readEntries(path, this.logger).length, replayed: 0 });
    } catch (error) {
      unlock();
      this.logger.warn({ err: error, path }, "journal file not adopted");
    }
  }

  /** Writes the file's remaining entries: true once it is done with (and removed), false when the database stopped it. */
  private async replayFile(file: JournalFile, replay: Replay): Promise<boolean> {
    let entries: JournalEntry[];
    try {
      entries = readEntries(file.path, this.logger);
    } catch (error) {
      // Gone (removed by hand?): nothing left to replay from it, and nothing behind it may wait.
      this.logger.error({ err: error, path: file.path }, "journal file unreadable: skipped");
      file.unlock();
      this.sealed.splice(this.sealed.indexOf(file), 1);
      return true;
    }
    for (; file.replayed < entries.length; file.replayed++) {
      if (!(await this.replayEntry(entries[file.replayed]!, replay))) return false;
    }
    removeFile(file);
    this.sealed.splice(this.sealed.indexOf(file), 1);
    return true;
  }

  /** False when the database did not take the entry but may later. */
  private async replayEntry(entry: JournalEntry, { handlers, isPermanent }: Replay): Promise<boolean> {
    const handler = handlers[entry.kind];
    try {
      if (!handler) throw new Error(`no replay handler for journal entry kind "${entry.kind}"`);
      await handler(entry.data, new Date(entry.at));
      this.replayedCount++;
    } catch (error) {
      // Anything not known to be final is tried again later: an entry is never dropped on a guess.
      if (handler && !isPermanent(error)) return false;
      this.refuse(entry, error);
    }
    return true;
  }

  private refuse(entry: JournalEntry, error: unknown): void {
    this.refusedCount++;
    // Kept, not dropped: a person can look at it, mend it and write it by hand.
    appendFileSync(join(this.dir, REFUSED_FILE), `${JSON.stringify({ refused_at: new Date().toISOString(), entry })}\n`);
    this.logger.error({ err: error, entry, kept_in: REFUSED_FILE }, "journal entry refused by the database for good");
  }
}

/** Entries the database refused for good, one JSON line each, beside the journal files. */
export const REFUSED_FILE = "refused.log";

const depthOf = (files: JournalFile[]) => files.reduce((sum, file) => sum + file.entries - file.replayed, 0);

function removeFile(file: Pick<JournalFile, "path" | "unlock">) {
  unlinkSync(file.path);
  file.unlock();
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
