// Property tests of the parsers users feed by hand: whatever the input, the result is a value or
// one ConfigError (exit 2, one line), never another exception; and the real command agrees.
import test from 'ava';
import fc from 'fast-check';
import { parseAppSpec } from '../src/app/app-spec.js';
import { parseArgs, splitShellWords } from '../src/config/cli-args.js';
import { resolveValues } from '../src/config/load-settings.js';
import { SETTINGS } from '../src/config/settings.js';
import { ConfigError } from '../src/core/errors.js';
import { parseBind } from '../src/sockets/address.js';
import { runCli } from './helpers/daemon.js';

const flags = SETTINGS.flatMap((s) => s.cli);
const word = fc.oneof(
  fc.constantFrom(...flags, '--', '-', '--help=x', '-w', '--bind=', 'app.js', 'x:y()', '--env', 'A=1'),
  fc.string({ maxLength: 12 }),
  fc.integer().map(String),
);

/** Runs `fn`; a thrown ConfigError with a one-line message is fine, anything else is not. */
function onlyConfigErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    return err instanceof ConfigError && !err.message.includes('\n') && err.message.length > 0;
  }
}

test('the argument parser and settings coercion throw nothing but ConfigError', (t) => {
  fc.assert(fc.property(fc.array(word, { maxLength: 8 }), (argv) =>
    onlyConfigErrors(() => resolveValues([parseArgs(argv).values]))), { numRuns: 3000 });
  t.pass();
});

test('TSGUNICORN_CMD_ARGS splitting throws nothing but ConfigError', (t) => {
  fc.assert(fc.property(fc.string({ maxLength: 40 }), (text) => onlyConfigErrors(() => splitShellWords(text))), { numRuns: 3000 });
  t.pass();
});

test('config values of any type are coerced or refused with ConfigError', (t) => {
  const anyValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string()));
  fc.assert(fc.property(fc.constantFrom(...SETTINGS.map((s) => s.name)), anyValue, (name, value) =>
    onlyConfigErrors(() => resolveValues([new Map([[name, value]])]))), { numRuns: 3000 });
  t.pass();
});

test('app module specs and bind addresses parse or fail with ConfigError', (t) => {
  const spec = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 })).map(([p, e, a]) => `${p}:${e}(${a})`),
  );
  fc.assert(fc.property(spec, (s) => onlyConfigErrors(() => parseAppSpec(s))), { numRuns: 5000 });
  fc.assert(fc.property(fc.string({ maxLength: 30 }), (s) => onlyConfigErrors(() => parseBind(s))), { numRuns: 3000 });
  t.pass();
});

test('the real command never prints a stack trace for random arguments', async (t) => {
  const samples = fc.sample(fc.array(word, { minLength: 1, maxLength: 5 }), { numRuns: 25, seed: 42 });
  for (const argv of samples) {
    const r = await runCli([...argv, '--print-config']);
    t.true(r.code === 0 || r.code === 2, `${JSON.stringify(argv)} -> ${r.code}: ${r.stderr}`);
    t.notRegex(r.stderr, /\n\s+at /, JSON.stringify(argv));
    if (r.code === 2) t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
