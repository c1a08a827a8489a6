// APP_MODULE: `PATH[:EXPORT]` or `PATH:FACTORY(ARGS)`. ARGS are literals only (strings, numbers,
// true/false/null, arrays, objects), parsed here and never evaluated.

import { ConfigError } from '../core/errors.js';

export interface AppSpec {
  readonly path: string;
  /** Named export; null means the default export (module.exports for CommonJS). */
  readonly exportName: string | null;
  /** Arguments when the export is a factory to call, null when it is used as it is. */
  readonly factoryArgs: unknown[] | null;
}

class LiteralParser {
  private i = 0;
  constructor(private readonly s: string) {}

  fail(what: string): never {
    throw new ConfigError(`app: factory arguments: ${what} at position ${this.i + 1} of (${this.s})`);
  }

  ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  list(close: string): unknown[] {
    const out: unknown[] = [];
    this.ws();
    if (this.s[this.i] === close) { this.i++; return out; }
    for (;;) {
      out.push(this.value());
      this.ws();
      const c = this.s[this.i++];
      if (c === close) return out;
      if (c !== ',') this.fail(`expected , or ${close}`);
      this.ws();
      if (this.s[this.i] === close) { this.i++; return out; }
    }
  }

  value(): unknown {
    this.ws();
    const c = this.s[this.i];
    if (c === '"' || c === "'") return this.string(c);
    if (c === '[') { this.i++; return this.list(']'); }
    if (c === '{') { this.i++; return this.object(); }
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?(?![\w.])|true\b|false\b|null\b)/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected a literal (string, number, true, false, null, [..] or {..})');
    this.i += m[0].length;
    return JSON.parse(m[0]) as unknown;
  }

  string(q: string): string {
    let out = '';
    this.i++;
    while (this.i < this.s.length) {
      const c = this.s[this.i++]!;
      if (c === q) return out;
      if (c === '\\') {
        const n = this.s[this.i++];
        const esc: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"' };
        if (n === undefined || !(n in esc)) this.fail('unknown escape');
        out += esc[n];
      } else {
        out += c;
      }
    }
    return this.fail('unterminated string');
  }

  object(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.s[this.i] === '}') { this.i++; return out; }
    for (;;) {
      this.ws();
      const c = this.s[this.i];
      let key: string;
      if (c === '"' || c === "'") key = this.string(c);
      else {
        const m = /^[A-Za-z_$][\w$]*/.exec(this.s.slice(this.i));
        if (!m) this.fail('expected a key');
        key = m[0];
        this.i += key.length;
      }
      this.ws();
      if (this.s[this.i++] !== ':') this.fail('expected :');
      out[key] = this.value();
      this.ws();
      const d = this.s[this.i++];
      if (d === '}') return out;
      if (d !== ',') this.fail('expected , or }');
    }
  }

  args(): unknown[] {
    const out = this.list(')');
    this.ws();
    if (this.i !== this.s.length) this.fail('unexpected text after )');
    return out;
  }
}

export function parseAppSpec(text: string): AppSpec {
  const t = text.trim();
  if (!t) throw new ConfigError('app: empty application module');
  // The export part is after the last colon that is followed by an identifier (so Windows-like
  // paths and "node:" specifiers are not split by accident).
  const m = /^(.*?):([A-Za-z_$][\w$]*)(\((.*)\))?$/s.exec(t);
  if (!m || !m[1]) {
    if (t.includes('(') || t.endsWith(':')) throw new ConfigError(`app: ${JSON.stringify(text)}: expected PATH, PATH:EXPORT or PATH:FACTORY(ARGS)`);
    return { path: t, exportName: null, factoryArgs: null };
  }
  const factoryArgs = m[3] !== undefined ? new LiteralParser(`${m[4]!})`).args() : null;
  return { path: m[1], exportName: m[2]!, factoryArgs };
}
