import { ActionError } from '@aipermission/plugin-sdk';
import { createKernel, type Kernel } from '../../src/kernel.js';
import { createStaticCatalog, defineStaticConnector, type ActionExecutor, type Invocation, type StaticConnectorDefinition } from '../../src/connectors/index.js';
import { createManualClock } from '../../src/lib/clock.js';
import type { Workspace } from '../../src/workspace/index.js';
import { tempDir, PASSWORD } from './temp.js';

/** The fake connector used by the kernel tests: an in-process stand-in for a plugin. */
export function fakeConnectorDefinition(version = '1.0.0', overrides: Partial<StaticConnectorDefinition> = {}): StaticConnectorDefinition {
  return {
    id: 'fake',
    version,
    title: 'Fake connector',
    targetSchema: { type: 'object', properties: { host: { type: 'string' } }, additionalProperties: false },
    credentialSchemas: {
      password: {
        config: { type: 'object', properties: { username: { type: 'string' } }, additionalProperties: false },
        secret: { type: 'object', properties: { password: { type: 'string' } }, additionalProperties: false },
      },
    },
    actions: [
      { name: 'echo', risk: 'read', input: { type: 'object', properties: { text: { type: 'string', maxLength: 1000 } }, required: ['text'], additionalProperties: false } },
      { name: 'write_thing', risk: 'write', input: { type: 'object', properties: { value: { type: 'string' } }, required: ['value'], additionalProperties: false } },
      { name: 'fail', risk: 'read', input: { type: 'object' } },
      { name: 'crash', risk: 'read', input: { type: 'object' } },
      { name: 'leak', risk: 'read', input: { type: 'object' } },
      { name: 'big', risk: 'read', input: { type: 'object', properties: { bytes: { type: 'integer' } } }, limits: { maxOutputBytes: 4096 } },
      { name: 'slow', risk: 'read', input: { type: 'object', properties: { ms: { type: 'integer' } } }, limits: { timeoutMs: 200 } },
      { name: 'hang', risk: 'read', input: { type: 'object' }, limits: { timeoutMs: 100 } },
      { name: 'wait', risk: 'write', input: { type: 'object' } },
      {
        name: 'typed',
        risk: 'read',
        input: { type: 'object' },
        output: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false },
      },
    ],
    ...overrides,
  };
}

/** Records every invocation it gets; behaviour per action name. */
export function createFakeExecutor(): ActionExecutor & { calls: Invocation[]; release: () => void; onInvoke?: (invocation: Invocation) => Promise<void> | void } {
  let releaseWait: () => void = () => undefined;
  const executor = {
    calls: [] as Invocation[],
    onInvoke: undefined as ((invocation: Invocation) => Promise<void> | void) | undefined,
    release: () => releaseWait(),
    async invoke(invocation: Invocation): Promise<unknown> {
      executor.calls.push(invocation);
      await executor.onInvoke?.(invocation);
      const input = invocation.input as Record<string, unknown>;
      switch (invocation.action.name) {
        case 'echo':
          return { text: input.text, host: invocation.target.config.host };
        case 'write_thing':
          return { written: input.value };
        case 'fail':
          throw new ActionError('config', 'Authentication failed: check the password of the profile.');
        case 'crash':
          throw new Error('segfault at 0xdeadbeef in /home/secret/path');
        case 'leak':
          return { message: `the password is ${String(invocation.scope.lease().fields.password)}` };
        case 'big':
          return { data: 'x'.repeat(Number(input.bytes ?? 10_000)) };
        case 'slow':
          await new Promise((resolve) => setTimeout(resolve, Number(input.ms ?? 50)));
          return { slept: input.ms };
        case 'hang':
          // Honours cancellation like a well-behaved plugin.
          return new Promise((_, reject) => invocation.signal.addEventListener('abort', () => reject(new ActionError('transient', 'cancelled'))));
        case 'wait':
          return new Promise((resolve) => {
            releaseWait = () => resolve({ released: true });
          });
        case 'typed':
          return { ok: 'not a boolean' };
        default:
          throw new Error(`fake has no ${invocation.action.name}`);
      }
    },
  };
  return executor;
}

export interface Harness {
  kernel: Kernel;
  ws: Workspace;
  dir: string;
  executor: ReturnType<typeof createFakeExecutor>;
  catalog: ReturnType<typeof createStaticCatalog>;
  clock: ReturnType<typeof createManualClock>;
  /** A target + password profile + token with a grant; returns the ids and the raw token. */
  setup(rule?: 'always_run' | 'approval_required' | 'blocked', action?: string): Promise<Fixture>;
  cleanup(): Promise<void>;
}

export interface Fixture {
  token: string;
  tokenId: string;
  targetId: string;
  profileId: string;
  targetRef: string;
}

export async function createHarness(options: { database?: string; manualClock?: boolean; log?: (message: string, error?: unknown) => void; /** A data directory the caller owns (and removes). */ dir?: string } = {}): Promise<Harness> {
  const { dir, cleanup } = options.dir ? { dir: options.dir, cleanup: async () => undefined } : await tempDir();
  const catalog = createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]);
  const executor = createFakeExecutor();
  const clock = createManualClock(Date.now());
  const kernel = createKernel({
    dataDir: dir,
    catalog,
    executor,
    ...(options.manualClock === false ? {} : { clock }),
    log: options.log ?? (() => undefined),
  });
  const name = options.database ?? 'main';
  await kernel.createDatabase(name, PASSWORD);
  const ws = await kernel.unlock(name, PASSWORD, 'operator:test');
  await ws.mcp.set(true, 'operator:test');
  let counter = 0;
  return {
    kernel,
    ws,
    dir,
    executor,
    catalog,
    clock,
    async setup(rule = 'always_run', action = '*') {
      counter += 1;
      const target = await ws.targets.createTarget({ kind: 'fake', name: `target-${counter}`, config: { host: 'db.internal' } }, 'operator:test');
      const profile = await ws.targets.createProfile(
        target.id,
        { label: 'default', credentialKind: 'password', config: { username: 'app' }, secret: { password: 'S3cret-Value-123' } },
        'operator:test',
      );
      const created = await ws.tokens.create({ name: `agent-${counter}` }, 'operator:test');
      await ws.grants.set({ tokenId: created.token.id, targetId: target.id, profileId: profile.id, action, rule }, 'operator:test');
      return { token: created.secret, tokenId: created.token.id, targetId: target.id, profileId: profile.id, targetRef: `fake:${target.id}:${profile.id}` };
    },
    async cleanup() {
      await kernel.close();
      await cleanup();
    },
  };
}
