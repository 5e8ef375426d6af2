// Whether the database is worth asking. Once a connection is lost (refused, reset, or a server
// that stopped answering past a statement's deadline), statements fail at once instead of each
// caller waiting out its own timeout to learn what the last one learned; a probe in the
// background asks until the database answers again, then tells whoever listens.
import { withDeadline } from "../errors";
import { isConnectionLost } from "./errors";

/** How often a database known to be down is asked whether it is back. */
const PROBE_INTERVAL_MS = 250;

export interface Availability {
  /** Runs one piece of database work within `ms`, or fails at once while the database is known to be down or closed. */
  run<T>(work: () => PromiseLike<T>, ms: number, what: string): Promise<T>;
  readonly available: boolean;
  readonly downSince: Date | null;
  /** Pieces of work sent and not yet answered (or timed out): past the pool's size, they queue for a connection. */
  readonly inFlight: number;
  onRecovered(listener: () => void): void;
  close(): void;
}

/** `probe` asks the database for an answer (select 1), bypassing the gate. */
export function trackAvailability(probe: () => Promise<unknown>): Availability {
  return new AvailabilityGate(probe);
}

class AvailabilityGate implements Availability {
  #closed = false;
  #downSince: Date | null = null;
  #downBecause: unknown;
  #inFlight = 0;
  readonly #recovered: (() => void)[] = [];
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  readonly #probe: () => Promise<unknown>;

  constructor(probe: () => Promise<unknown>) {
    this.#probe = probe;
  }

  async run<T>(work: () => PromiseLike<T>, ms: number, what: string): Promise<T> {
    if (this.#closed) throw new DatabaseClosedError();
    if (this.#downSince) throw new DatabaseDownError(this.#downSince, this.#downBecause);
    this.#inFlight++;
    try {
      // statement_timeout cannot help when the server stops answering altogether; this bound can.
      return await withDeadline(Promise.resolve(work()), ms, what);
    } catch (error) {
      this.#markDown(error);
      throw error;
    } finally {
      this.#inFlight--;
    }
  }

  get available() {
    return !this.#downSince && !this.#closed;
  }

  get downSince() {
    return this.#downSince;
  }

  get inFlight() {
    return this.#inFlight;
  }

  onRecovered = (listener: () => void) => void this.#recovered.push(listener);

  /** Runs `work` after `ms` unless closed by then. */
  #later(ms: number, work: () => void) {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) work();
    }, ms);
    this.#timers.add(timer);
  }

  close() {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
  }

  #markDown(error: unknown) {
    if (this.#closed || this.#downSince || !isConnectionLost(error)) return;
    this.#downSince = new Date();
    this.#downBecause = error;
    this.#later(PROBE_INTERVAL_MS, this.#probeUntilBack);
  }

  #probeUntilBack = () => {
    this.#probe().then(
      () => {
        this.#downSince = null;
        for (const listener of this.#recovered) listener();
      },
      () => this.#later(PROBE_INTERVAL_MS, this.#probeUntilBack),
    );
  };
}

/** A statement while the database is known to be down: refused at once, a probe watches for its return. */
export class DatabaseDownError extends Error {
  readonly code = "CONNECTION_DOWN";
  /** `cause`: the failure that showed the database was down (refused, timed out...), for the logs. */
  constructor(since: Date, cause?: unknown) {
    super(`database unavailable since ${since.toISOString()}`, { cause });
    this.name = "DatabaseDownError";
  }
}

/** A statement after close() (during shutdown): unavailable, like a connection postgres.js has ended. */
export class DatabaseClosedError extends Error {
  readonly code = "CONNECTION_ENDED";
  constructor() {
    super("database closed");
    this.name = "DatabaseClosedError";
  }
}
