// An exclusive flock(2) on a file: the kernel drops it when the holder exits however it exits,
// it is atomic (two openers cannot both win), and it works across containers sharing a volume,
// where a pid would not (everyone is pid 1).
import { closeSync, fstatSync, openSync, statSync } from "node:fs";
import { dlopen, FFIType } from "bun:ffi";

const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * Takes the lock on `path` and returns its release, or null when another process holds it or
 * (without `create`) the file is gone, or was removed while the lock was being taken.
 */
export function tryLockFile(path: string, { create }: { create: boolean }): (() => void) | null {
  let fd: number;
  try {
    fd = openSync(path, create ? "a" : "r");
  } catch (error) {
    if (!create && (error as { code?: string }).code === "ENOENT") return null;
    throw error;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0 || (!create && !sameFile(fd, path))) {
    closeSync(fd);
    return null;
  }
  return () => closeSync(fd); // closing the descriptor releases the lock
}

/** The descriptor still names the file at `path` (its owner did not remove it before unlocking). */
function sameFile(fd: number, path: string): boolean {
  try {
    return fstatSync(fd).ino === statSync(path).ino;
  } catch {
    return false;
  }
}

/** libc's flock(2); loaded only when a lock is taken. */
function flock(fd: number, operation: number): number {
  const libc = dlopen(process.platform === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  });
  try {
    return libc.symbols.flock(fd, operation);
  } finally {
    libc.close();
  }
}
