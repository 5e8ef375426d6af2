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
  /** Runs `work` after `ms` unless closed by then. */
  later(ms: number, work: () => void): void;
  close(): void;
}

/** `probe` asks the database for an answer (select 1), bypassing the gate. */
export function trackAvailability(probe: () => Promise<unknown>): Availability {
  let closed = false;
  let downSince: Date | null = null;
  let downBecause: unknown;
  let inFlight = 0;
  const recovered: (() => void)[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (ms: number, work: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!closed) work();
    }, ms);
    timers.add(timer);
  };
  const probeUntilBack = () =>
    probe().then(
      () => {
        downSince = null;
        for (const listener of recovered) listener();
      },
      () => later(PROBE_INTERVAL_MS, probeUntilBack),
    );
  const markDown = (error: unknown) => {
    if (closed || downSince || !isConnectionLost(error)) return;
    downSince = new Date();
    downBecause = error;
    later(PROBE_INTERVAL_MS, probeUntilBack);
  };
  return {
    async run<T>(work: () => PromiseLike<T>, ms: number, what: string) {
      if (closed) throw new DatabaseClosedError();
      if (downSince) throw new DatabaseDownError(downSince, downBecause);
      inFlight++;
      try {
        // statement_timeout cannot help when the server stops answering altogether; this bound can.
        return await withDeadline(Promise.resolve(work()), ms, what);
      } catch (error) {
        markDown(error);
        throw error;
      } finally {
        inFlight--;
      }
    },
    get available() {
      return !downSince && !closed;
    },
    get downSince() {
      return downSince;
    },
    get inFlight() {
      return inFlight;
    },
    onRecovered: (listener) => void recovered.push(listener),
    later,
    close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
    },
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
