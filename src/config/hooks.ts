// Server hooks from a JS config file. A hook that throws is logged and does not stop the server.

import type { HookName, Settings } from './settings.js';
import type { Logger } from '../logging/logger.js';

export type Hooks = Pick<Settings, HookName>;

export async function runHook(hooks: Partial<Hooks>, name: HookName, log: Logger, ...args: unknown[]): Promise<void> {
  const fn = hooks[name] as ((...a: unknown[]) => unknown) | null | undefined;
  if (!fn) return;
  try {
    await fn(...args);
  } catch (err) {
    log.error(`Server hook ${name} failed: ${(err as Error)?.stack ?? String(err)}`);
  }
}
