// Closes extra copies of our listening sockets that a process inherited by accident. The sockets
// node-unix-socket creates are not close-on-exec, so a child started with a listener at fd 3 also
// gets the parent's copy under its old number, and a worker gets every other reuse-port slot's
// socket too (which then never closes while that worker lives). Like tableflip's Ready(), a
// process closes the inherited descriptors nobody claimed, so nothing but its own listeners and
// stdio crosses over.

import { closeSync, fstatSync, readdirSync } from 'node:fs';

function inode(fd: number): bigint | null {
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.isSocket() ? st.ino : null;
  } catch {
    return null;
  }
}

/**
 * Closes every descriptor that is the same socket as one of `keep`, or one of the sockets whose
 * inode numbers are in `others`, but not in `keep`.
 */
export function closeStrayCopies(keep: readonly number[], others: readonly string[] = []): number {
  const wanted = new Set([...keep.map(inode).filter((i): i is bigint => i !== null), ...others.map(BigInt)]);
  let closed = 0;
  for (const entry of readdirSync('/proc/self/fd')) {
    const fd = Number(entry);
    if (fd < 3 || keep.includes(fd)) continue;
    const ino = inode(fd);
    if (ino !== null && wanted.has(ino)) {
      closeSync(fd);
      closed++;
    }
  }
  return closed;
}
