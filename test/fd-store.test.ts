// The names sockets get in systemd's file descriptor store (src/systemd/fd-store.ts): a master
// started with them must know each again, with its address, slot and owned unix path. What
// systemd does with them is tested on a booted Debian 13 (package.test.ts).

import test from 'ava';
import { fromStore, storeName } from '../src/systemd/fd-store.js';

const cases = [
  { name: '127.0.0.1:8000', slot: null, ownPath: null },
  { name: '[::1]:8000', slot: 3, ownPath: null },
  { name: 'unix:/run/tsgunicorn/app/http.sock', slot: null, ownPath: { path: '/run/tsgunicorn/app/http.sock', dev: '27', ino: '1234' } },
];

for (const s of cases) {
  test(`store name round trip: ${s.name}${s.slot === null ? '' : ` slot ${s.slot}`}`, (t) => {
    const fdname = storeName(s);
    t.true(fdname.startsWith('tsgunicorn~'));
    t.false(fdname.includes(':'), 'FDNAME= allows no colon');
    t.true(fdname.length <= 255);
    t.true([...fdname].every((c) => c >= ' ' && c <= '~'), 'printable ASCII');
    t.deepEqual(fromStore({ fd: 5, name: fdname, slot: null, ownPath: null }), { fd: 5, ...s });
  });
}

test('a socket unit\'s names are not the store\'s', (t) => {
  for (const name of ['tsgunicorn@app.socket', 'web', 'fd://3', 'tsgunicorn~broken']) {
    t.is(fromStore({ fd: 3, name, slot: null, ownPath: null }), null, name);
  }
  t.is(storeName({ name: '127.0.0.1:8000', slot: null, ownPath: null }), 'tsgunicorn~s~-~127.0.0.1%3A8000');
});
