import { Hono } from 'hono';
import { SETTINGS_PATCH_SCHEMA, type SettingsStore } from '../../settings/index.js';
import { BUILTIN_RULES, type RedactionStore } from '../../redaction/index.js';
import { credentialKindsOf, formSchemasOf, type ConnectorCatalog } from '../../connectors/index.js';
import type { McpSwitch } from '../../mcp-switch/index.js';
import type { HttpEnv } from '../context.js';
import type { DatabaseGuard, PerDatabase } from '../deps.js';
import { bodySchema, checkQuery, databaseFor, readBody, unlockedDatabase } from '../helpers.js';

const mcpBody = bodySchema<{ running: boolean }>({ running: { type: 'boolean' } }, ['running']);
const ruleBody = bodySchema<{ name: string; pattern: string; flags?: string; replacement?: string }>(
  {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    pattern: { type: 'string', minLength: 1, maxLength: 512 },
    flags: { type: 'string', maxLength: 3 },
    replacement: { type: 'string', maxLength: 200 },
  },
  ['name', 'pattern'],
);

/** What the config routes use of each database: its settings, MCP switch, custom redaction rules and connector list. */
export interface ConfigRouteDeps {
  databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>;
  settings: PerDatabase<Pick<SettingsStore, 'get' | 'update'>>;
  mcpSwitch: PerDatabase<Pick<McpSwitch, 'isRunning' | 'set'>>;
  redaction: PerDatabase<Pick<RedactionStore, 'list' | 'add' | 'remove'>>;
  catalog: PerDatabase<Pick<ConnectorCatalog, 'list'>>;
}

/** Settings, the MCP switch, redaction rules and the connector catalog of one database. */
export function configRoutes(deps: ConfigRouteDeps) {
  const app = new Hono<HttpEnv>();

  app.get('/databases/:db/settings', async (c) => {
    checkQuery(c, []);
    const { name } = await databaseFor(c, deps.databases);
    return c.json({ settings: deps.settings(name).get() });
  });

  app.patch('/databases/:db/settings', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const settings = deps.settings(name);
    // The settings store validates the patch with its own schema (unknown keys are refused there).
    const body = await readBody(c, (value) => value);
    return c.json({ settings: await settings.update(body, actor), schema: SETTINGS_PATCH_SCHEMA.properties });
  });

  app.get('/databases/:db/mcp', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    return c.json({ running: deps.mcpSwitch(name).isRunning() });
  });

  // Switching off only stops agents, so it needs no password (an agent that
  // sprays wrong passwords must never keep the operator from stopping it);
  // switching on needs a session that proved this database's password (invariant 8).
  app.put('/databases/:db/mcp', async (c) => {
    const body = await readBody(c, mcpBody);
    const { name, actor } = body.running ? await databaseFor(c, deps.databases) : await unlockedDatabase(c, deps.databases);
    const mcp = deps.mcpSwitch(name);
    await mcp.set(body.running, actor);
    return c.json({ running: mcp.isRunning() });
  });

  app.get('/databases/:db/redaction-rules', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    return c.json({ builtinEnabled: deps.settings(name).get().builtinRedaction, builtin: BUILTIN_RULES.map((rule) => rule.name), rules: await deps.redaction(name).list() });
  });

  app.post('/databases/:db/redaction-rules', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const redaction = deps.redaction(name);
    const body = await readBody(c, ruleBody);
    return c.json({ rule: await redaction.add(body, actor) }, 201);
  });

  app.delete('/databases/:db/redaction-rules/:id', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    await deps.redaction(name).remove(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  app.get('/databases/:db/connectors', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    return c.json({
      connectors: deps.catalog(name).list().map((connector) => ({
        id: connector.id,
        version: connector.version,
        title: connector.title,
        ...(connector.description ? { description: connector.description } : {}),
        manifestHash: connector.manifestHash,
        // What a credential profile of each kind takes; the first kind is the default.
        credentialKinds: credentialKindsOf(connector),
        // The manifest's schemas, for forms generated from them (the web UI).
        ...formSchemasOf(connector),
        actions: [...connector.actions.values()].map((action) => ({
          name: action.name,
          title: action.title,
          description: action.description,
          risk: action.risk,
          limits: action.limits,
          inputSchema: action.inputSchema,
        })),
      })),
    });
  });

  return app;
}
