import { describe, it } from 'vitest';

/**
 * describe() for suites that need a server. `missing` is null when it is
 * there, else why not. Without it: in CI (CI=true) the suite fails with the
 * reason, never a silent skip; locally it is skipped with a loud warning.
 */
export function describeNeeding(server: string, missing: string | null, name: string, fn: () => void): void {
  if (missing === null) describe(name, fn);
  else if (process.env.CI === 'true') {
    describe(name, () => it(`has ${server}`, () => { throw new Error(missing); }));
  } else {
    const bar = '!'.repeat(78);
    process.stderr.write(`\n${bar}\n!! SKIPPING "${name}"\n!! ${missing.replace(/\n/g, '\n!! ')}\n${bar}\n\n`);
    describe.skip(name, fn);
  }
}
