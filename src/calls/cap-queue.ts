// Capped calls wait their turn in this process, one per capped number or tenant. The database
// admits one capped call of a number at a time anyway (record_capped_call's lock, migration 0010):
// queueing them here keeps a burst to one connection per number, instead of every connection of
// the pool waiting on the lock while other numbers' calls wait for a connection.
import type { CallDecision } from "./service";

/**
 * What a capped call's write queues behind in this process: its tenant when the tenant is capped
 * (every call of the tenant is then counted together), else its number.
 */
const capKey = (decision: CallDecision) => (decision.cap?.tenant ? `tenant:${decision.tenantId}` : `number:${decision.phoneNumberId}`);

/** Runs `work` after the work queued before it under `key` has settled. */
function oneAtATime<T>(queues: Map<string, Promise<unknown>>, key: string, work: () => Promise<T>): Promise<T> {
  const run = (queues.get(key) ?? Promise.resolve()).then(work, work);
  const settled = run.then(
    () => {},
    () => {},
  );
  queues.set(key, settled);
  void settled.then(() => {
    if (queues.get(key) === settled) queues.delete(key);
  });
  return run;
}

/** A queue per capped number or tenant: `inTurn(decision, work)` runs `work` once the calls before it are written. */
export function capQueue() {
  const queues = new Map<string, Promise<unknown>>();
  return <T>(decision: CallDecision, work: () => Promise<T>) => oneAtATime(queues, capKey(decision), work);
}
