import { Hono } from 'hono';
import type { Kernel } from '../../kernel.js';
import { SETTINGS_PATCH_SCHEMA } from '../../settings/index.js';
import { BUILTIN_RULES } from '../../redaction/index.js';
import { credentialKindsOf } from '../../connectors/index.js';
import type { HttpEnv } from '../context.js';
import { bodySchema, checkQuery, readBody, unlockedWorkspace, workspaceFor } from '../helpers.js';

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

/** Settings, the MCP switch, redaction rules and the connector catalog of one database. */
export function configRoutes(kernel: Kernel) {
  const app = new Hono<HttpEnv>();

  app.get('/databases/:db/settings', async (c) => {
    checkQuery(c, []);
    const { ws } = await workspaceFor(c, kernel);
    return c.json({ settings: ws.settings.get() });
  });

  app.patch('/databases/:db/settings', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    // The settings store validates the patch with its own schema (unknown keys are refused there).
    const body = await readBody(c, (value) => value);
    return c.json({ settings: await ws.settings.update(body, actor), schema: SETTINGS_PATCH_SCHEMA.properties });
  });

  app.get('/databases/:db/mcp', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    return c.json({ running: ws.mcp.isRunning() });
  });

  // Switching off only stops agents, so it needs no password (an agent that
  // sprays wrong passwords must never keep the operator from stopping it);
  // switching on needs a session that proved this database's password (invariant 8).
  app.put('/databases/:db/mcp', async (c) => {
    const body = await readBody(c, mcpBody);
    const { ws, actor } = body.running ? await workspaceFor(c, kernel) : await unlockedWorkspace(c, kernel);
    await ws.mcp.set(body.running, actor);
    return c.json({ running: ws.mcp.isRunning() });
  });

  app.get('/databases/:db/redaction-rules', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    return c.json({ builtinEnabled: ws.settings.get().builtinRedaction, builtin: BUILTIN_RULES.map((rule) => rule.name), rules: await ws.redaction.list() });
  });

  app.post('/databases/:db/redaction-rules', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, ruleBody);
    return c.json({ rule: await ws.redaction.add(body, actor) }, 201);
  });

  app.delete('/databases/:db/redaction-rules/:id', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    await ws.redaction.remove(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  app.get('/databases/:db/connectors', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    return c.json({
      connectors: ws.catalog.list().map((connector) => ({
        id: connector.id,
        version: connector.version,
        title: connector.title,
        ...(connector.description ? { description: connector.description } : {}),
        manifestHash: connector.manifestHash,
        // What a credential profile of each kind takes; the first kind is the default.
        credentialKinds: credentialKindsOf(connector),
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
