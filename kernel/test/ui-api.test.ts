/** What the web UI reads beyond the CLI: the connectors' own form schemas, and what a pending approval is bound to. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createPluginHost } from '../src/plugin-host/index.js';
import { createInvocationScopes } from '../src/invocations/index.js';
import { createStaticCatalog, defineStaticConnector } from '../src/connectors/index.js';
import { FIXTURES } from './helpers/plugins.js';
import { createFakeExecutor, fakeConnectorDefinition } from './helpers/kernel.js';
import { tempDir, PASSWORD } from './helpers/temp.js';
import { httpApp, TestClient } from './helpers/http.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

async function operator(kernel: Kernel): Promise<TestClient> {
  const client = new TestClient(httpApp(kernel).app);
  await client.get('/api/status');
  await client.json('POST', '/api/databases', { name: 'main', password: PASSWORD }, 201);
  return client;
}

describe('connector form schemas', () => {
  it("lists a plugin's targetSchema and credentialSchemas from its manifest, secret fields marked x-secret", async () => {
    const dataDir = join(dir, 'data');
    const scopes = createInvocationScopes();
    const plugins = await createPluginHost({ dataDir, scopes, clock: { now: () => Date.now() }, log: () => undefined, kernelInfo: { name: 't', version: '0' }, builtinRoot: FIXTURES, builtins: ['echo'] });
    const kernel = createKernel({ dataDir, plugins, scopes, log: () => undefined });
    try {
      const client = await operator(kernel);
      const { connectors } = await client.json('GET', '/api/databases/main/connectors');
      const echo = connectors.find((c: { id: string }) => c.id === 'echo-fixture');
      expect(echo.targetSchema.properties).toEqual({ host: { type: 'string' }, port: { type: 'integer' }, note: { type: 'string' } });
      expect(echo.credentialSchemas.password.properties.password).toEqual({ type: 'string', 'x-secret': true });
      expect(echo.credentialKinds[0]).toMatchObject({ kind: 'password', secret: ['password'] });
    } finally {
      await kernel.close();
    }
  });

  it('answers null schemas for an in-process connector without a manifest (the UI falls back to credentialKinds)', async () => {
    const kernel = createKernel({ dataDir: dir, catalog: createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]), executor: createFakeExecutor(), log: () => undefined });
    try {
      const { connectors } = await (await operator(kernel)).json('GET', '/api/databases/main/connectors');
      expect(connectors[0]).toMatchObject({ id: 'fake', targetSchema: null, credentialSchemas: null });
    } finally {
      await kernel.close();
    }
  });
});

describe('request binding', () => {
  it('shows what a pending approval is bound to (connector build, target and profile revisions, action definition, input hash), and null for a request that never waited', async () => {
    const kernel = createKernel({ dataDir: dir, catalog: createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]), executor: createFakeExecutor(), log: () => undefined });
    try {
      const client = await operator(kernel);
      const { target } = await client.json('POST', '/api/databases/main/targets', { kind: 'fake', name: 'box', config: { host: 'h' } }, 201);
      const { profile } = await client.json('POST', `/api/databases/main/targets/${target.id}/profiles`, { label: 'p', credentialKind: 'password', secret: { password: 'x' } }, 201);
      const created = await client.json('POST', '/api/databases/main/tokens', { name: 'agent' }, 201);
      await client.json('PUT', '/api/databases/main/grants', { tokenId: created.token.id, targetId: target.id, profileId: profile.id, action: 'write_thing', rule: 'approval_required' });
      await client.json('PUT', '/api/databases/main/grants', { tokenId: created.token.id, targetId: target.id, profileId: profile.id, action: 'echo', rule: 'always_run' });
      await client.json('PUT', '/api/databases/main/mcp', { running: true });
      const caller = kernel.authenticateToken(created.secret);
      const outcome = await kernel.pipeline.call(caller, { targetRef: `fake:${target.id}:${profile.id}`, action: 'write_thing', input: { value: 'v' }, reason: 'r' });
      if (outcome.kind !== 'request') throw new Error('expected a request');
      const { request } = await client.json('GET', `/api/databases/main/requests/${outcome.request.id}`);
      expect(request.binding).toEqual({
        connector: { id: 'fake', version: '1.0.0', manifestHash: expect.stringMatching(/^[0-9a-f]{64}$/), integrity: null },
        target: { id: target.id, configRevision: target.configRevision },
        profile: { id: profile.id, configRevision: profile.configRevision, secretRevision: profile.secretRevision },
        action: { name: 'write_thing', definitionHash: expect.stringMatching(/^[0-9a-f]{64}$/) },
        inputHash: request.inputHash,
      });
      const ran = await kernel.pipeline.call(caller, { targetRef: `fake:${target.id}:${profile.id}`, action: 'echo', input: { text: 't' }, reason: 'r' });
      if (ran.kind !== 'request') throw new Error('expected a request');
      expect((await client.json('GET', `/api/databases/main/requests/${ran.request.id}`)).request.binding).toBeNull();
    } finally {
      await kernel.close();
    }
  });
});
