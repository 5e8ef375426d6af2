// The routing directory held in memory: dialed number -> tenant, campaign, their agents and
// policies (blocklists, business hours, caps; directory-data.ts).
// Routing reads it, not the database, so a caller gets the right agent in microseconds and
// still gets it while the database is down. It stays fresh three ways: a NOTIFY from triggers
// on the tables it is built from (any process, the admin API, seed or plain SQL; migration
// 0007), a reload whenever the database comes back or the subscription is re-established
// (notifications may have been missed meanwhile), and a periodic full reload as a safety net.
// A lookup waits only for a change made through this process's admin API (its answer promises
// the next call sees it); changes made elsewhere are routed by as soon as they are loaded.
import type { Database } from "../db/client";
import { withDeadline } from "../errors";
import type { Logger } from "../logger";
import {
  compilePolicies,
  type DirectoryData,
  type DirectoryEntry,
  emptyDirectory,
  readDirectory,
  readSnapshot,
  saveSnapshot,
  variablesOf,
} from "./directory-data";
import type { CallPolicies } from "./policy";

export type { DirectoryEntry } from "./directory-data";

/** The channel migration 0007's triggers notify. */
export const DIRECTORY_CHANNEL = "switchboard_directory";

export interface DirectoryStatus {
  loaded: boolean;
  loadedAt: Date | null;
  /** Where the entries came from: the database, or the snapshot on disk (the database was down at start). */
  source: "database" | "snapshot" | null;
  numbers: number;
  /** False while an announced change is not yet loaded (the database may be down). */
  fresh: boolean;
}

export interface RoutingDirectory {
  /** The entry of a dialed number (E.164); null for a number no active tenant owns. */
  lookup(toNumber: string | null): Promise<DirectoryEntry | null>;
  /** The policies of a number's calls (a looked-up entry; null: a number no tenant owns, only global entries apply). */
  policies(entry: DirectoryEntry | null): CallPolicies;
  /** The custom variables of a number's calls (tenant's, then campaign's). */
  variables(entry: DirectoryEntry | null): Record<string, unknown>;
  /** Announces a change made through this process; the next lookups wait (briefly) for it. */
  changed(): void;
  /** Resolves once a load that started after this call has finished (rejects if it fails). */
  reload(): Promise<void>;
  /** The load begun when the directory was made (rejects if it failed): what a server waits for at start. */
  firstLoad: Promise<void>;
  /**
   * Takes the entries from the snapshot on disk, if nothing was loaded yet; true when it did.
   * `expected`: the database is known to be opening (a restart), not down; said as such in the log.
   */
  restoreSnapshot(expected?: boolean): Promise<boolean>;
  /** Waits for the loads and snapshot saves under way; true when the snapshot on disk holds every announced change. */
  snapshotCurrent(): Promise<boolean>;
  status(): DirectoryStatus;
  close(): void;
}

export interface DirectoryOptions {
  database: Database;
  logger: Logger;
  /** How long a lookup waits for an announced change to be loaded before answering from the last copy. */
  waitMs: number;
  /** The safety-net reload's period. */
  reloadIntervalMs: number;
  /**
   * Where a copy of the last loaded directory is kept, so that a process started while the
   * database is down still routes every known number to its agent.
   */
  snapshotPath?: string;
}

export function createRoutingDirectory(options: DirectoryOptions): RoutingDirectory {
  return new MemoryDirectory(options);
}

class MemoryDirectory implements RoutingDirectory {
  #data: DirectoryData = emptyDirectory();
  #policies: (entry: DirectoryEntry | null) => CallPolicies;
  #loadedAt: Date | null = null;
  #source: DirectoryStatus["source"] = null;
  // Changes announced so far, and how many of them the loaded entries include: all of them (for
  // the status), and those made through this process (the ones lookups wait for; see lookup).
  readonly #announced = { all: 0, here: 0 };
  readonly #included = { all: 0, here: 0 };
  #running: Promise<void> | null = null;
  #queued: Promise<void> | null = null;
  // Snapshots are written one after the other, never on a lookup's path; true once the last one is on disk.
  #saving: Promise<boolean> = Promise.resolve(false);
  readonly #timer: ReturnType<typeof setInterval>;
  readonly firstLoad: Promise<void>;

  constructor(private readonly options: DirectoryOptions) {
    this.#policies = compilePolicies(this.#data, options.logger);
    // The first load counts as a change of this process: lookups wait for it.
    this.firstLoad = this.reload();
    // A database already known to be down (or still opening) fails it at once: no news to warn of.
    this.firstLoad.catch(options.database.available ? this.#reloadFailed : () => {});
    options.database.listen(DIRECTORY_CHANNEL, this.#heard, this.#heard);
    options.database.onRecovered(this.#heard);
    this.#timer = setInterval(this.#reloadInBackground, options.reloadIntervalMs);
    this.#timer.unref?.();
  }

  async lookup(toNumber: string | null): Promise<DirectoryEntry | null> {
    // Only this process's own changes are waited for: a reload of a large directory takes a
    // while, and a change made elsewhere reaches this process later than its author's answer anyway.
    const pending = this.#queued ?? this.#running;
    if (this.#included.here < this.#announced.here && pending && this.options.database.available) {
      await withDeadline(pending, this.options.waitMs, "routing directory reload").catch(() => {});
    }
    return toNumber ? (this.#data.numbers.get(toNumber) ?? null) : null;
  }

  policies = (entry: DirectoryEntry | null): CallPolicies => this.#policies(entry);

  variables = (entry: DirectoryEntry | null) => variablesOf(this.#data, entry);

  /** A change made through this process: the next lookups wait for it, so its API's answer holds. */
  changed = () => {
    this.#announced.here++;
    this.#heard();
  };

  reload(): Promise<void> {
    this.#announced.here++;
    this.#announced.all++;
    return this.#load();
  }

  async restoreSnapshot(expected = false): Promise<boolean> {
    const { snapshotPath, logger } = this.options;
    if (this.#loadedAt || !snapshotPath) return false;
    const snapshot = await readSnapshot(snapshotPath, logger);
    if (!snapshot || this.#loadedAt) return false;
    this.#use(snapshot.data);
    this.#loadedAt = snapshot.loadedAt;
    this.#source = "snapshot";
    const saved = { numbers: this.#data.numbers.size, saved_at: snapshot.loadedAt.toISOString() };
    if (expected) logger.info(saved, "routing directory taken from its snapshot while the database opens");
    else logger.warn(saved, "routing directory taken from its snapshot: the database is unavailable");
    return true;
  }

  async snapshotCurrent(): Promise<boolean> {
    for (let pending = this.#queued ?? this.#running; pending; pending = this.#queued ?? this.#running) {
      await pending.catch(() => {});
    }
    const saved = await this.#saving;
    return saved && this.#source === "database" && this.status().fresh;
  }

  status(): DirectoryStatus {
    const fresh = this.#included.all >= this.#announced.all;
    return { loaded: this.#loadedAt !== null, loadedAt: this.#loadedAt, source: this.#source, numbers: this.#data.numbers.size, fresh };
  }

  close() {
    clearInterval(this.#timer);
  }

  /** One load at a time; calls during a load share the one queued after it (which sees their change). */
  #load(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#loadOnce().finally(() => {
        this.#running = null;
      });
      return this.#running;
    }
    this.#queued ??= this.#running
      .catch(() => {})
      .then(() => {
        this.#queued = null;
        return this.#load();
      });
    return this.#queued;
  }

  async #loadOnce() {
    const covers = { ...this.#announced };
    const started = performance.now();
    this.#use(await readDirectory(this.options.database));
    this.#loadedAt = new Date();
    this.#source = "database";
    this.#included.all = Math.max(this.#included.all, covers.all);
    this.#included.here = Math.max(this.#included.here, covers.here);
    const ms = Math.round(performance.now() - started);
    this.options.logger.debug({ numbers: this.#data.numbers.size, ms }, "routing directory loaded");
    const { snapshotPath, logger } = this.options;
    if (snapshotPath) {
      const [loaded, at] = [this.#data, this.#loadedAt];
      this.#saving = this.#saving.then(() => saveSnapshot(snapshotPath, loaded, at, logger));
    }
  }

  #use(data: DirectoryData) {
    this.#policies = compilePolicies(data, this.options.logger);
    this.#data = data;
  }

  /** A change somewhere (a NOTIFY, a reconnection): loaded in the background, no lookup waits for it. */
  #heard = () => {
    this.#announced.all++;
    void this.#reloadInBackground();
  };

  #reloadInBackground = () => this.#load().catch(this.#reloadFailed);

  #reloadFailed = (error: unknown) =>
    this.options.logger.warn(
      { err: error, numbers: this.#data.numbers.size },
      "routing directory reload failed: routing from the last loaded copy",
    );
}
