// The log files workers write. Workers open errorlog and accesslog themselves (and reopen them on
// USR1), and they are started as `user`, never as root: as Gunicorn does (glogging.py
// `_set_handler`), the master running as root creates the files and gives them to that user.

import { closeSync, constants, fchownSync, fstatSync, openSync } from 'node:fs';
import type { Settings } from '../config/settings.js';
import type { Identity } from '../config/identity.js';

/**
 * Creates errorlog and accesslog if missing (mode 0640, never truncated) and chowns them to `id`.
 * The file is opened without following a symlink and chowned through its descriptor, and only a
 * regular file with one link is given away: in a directory the user can write to, a planted link
 * must not make root hand over another file. A file that cannot be prepared is left alone: the
 * worker's Destination then logs to standard error, with one warning.
 */
export function prepareLogFiles(s: Pick<Settings, 'errorlog' | 'accesslog'>, id: Identity | null): void {
  if (id === null || process.getuid!() !== 0) return;
  for (const path of [s.errorlog, s.accesslog]) {
    if (path === null || path === '-') continue;
    let fd: number | null = null;
    try {
      // O_NONBLOCK: a FIFO without a reader fails at once instead of blocking the master.
      fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o640);
      const st = fstatSync(fd);
      if (st.isFile() && st.nlink === 1 && (st.uid !== id.uid || st.gid !== id.gid)) fchownSync(fd, id.uid, id.gid);
    } catch {
      /* left alone (see above) */
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
}
