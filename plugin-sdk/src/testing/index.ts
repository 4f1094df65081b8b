/**
 * `@aipermission/plugin-sdk/testing` — for connector authors: an in-process
 * harness for unit tests, and the conformance suite every plugin runs.
 *
 *   import { describeConformance } from '@aipermission/plugin-sdk/testing';
 *   describeConformance({ entry: new URL('../dist/plugin.mjs', import.meta.url) });
 */
import { afterAll, describe, it } from 'vitest';
import { conformanceChecks, type ConformanceOptions } from './conformance.js';

export { createHarness } from './harness.js';
export type { Harness, HarnessCall } from './harness.js';
export { runConformance, startPlugin, sampleLease, conformanceChecks } from './conformance.js';
export type { ConformanceOptions, ConformanceReport, PluginUnderTest } from './conformance.js';

/** Registers the conformance suite as vitest tests (they share one plugin process, in order). */
export function describeConformance(options: ConformanceOptions & { name?: string }): void {
  describe(options.name ?? 'plugin conformance', () => {
    const { checks, stop } = conformanceChecks(options);
    afterAll(stop);
    for (const check of checks) it(check.name, () => check.run(), 15_000);
  });
}
