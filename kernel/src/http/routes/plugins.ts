import { Hono } from 'hono';
import { secretFieldsOf, declaredFieldsOf } from '@aipermission/plugin-sdk/protocol';
import { KernelError } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import type { Kernel } from '../../kernel.js';
import { assertPluginId, type InspectedPlugin, type PluginHost } from '../../plugin-host/index.js';
import type { HttpContext, HttpEnv } from '../context.js';
import { bodySchema, readBody, workspaceFor } from '../helpers.js';

const inspectBody = bodySchema<{ source: string }>({ source: { type: 'string', minLength: 1, maxLength: 4096 } }, ['source']);
const installBody = bodySchema<{ inspection: string; integrity: string }>(
  { inspection: { type: 'string', minLength: 1, maxLength: 64 }, integrity: { type: 'string', minLength: 1, maxLength: 128 } },
  ['inspection', 'integrity'],
);
const checkBody = bodySchema<{ profileId: string }>({ profileId: { type: 'string', minLength: 1, maxLength: 64 } }, ['profileId']);
/** How long an inspected (staged) plugin waits for the operator's consent. */
const INSPECTION_TTL_MS = 10 * 60_000;

function summary(manifest: InspectedPlugin['manifest']) {
  return {
    id: manifest.id,
    version: manifest.version,
    title: manifest.title,
    description: manifest.description,
    transports: manifest.transports,
    actions: manifest.actions.map((action) => ({ name: action.name, title: action.title, risk: action.risk })),
    // What a profile will hand this plugin at each call (secret fields marked).
    credentials: Object.fromEntries(
      Object.entries(manifest.credentialSchemas).map(([kind, schema]) => [kind, { fields: declaredFieldsOf(schema), secret: secretFieldsOf(schema) }]),
    ),
  };
}

/** The `:id` of a plugin route, refused with a clear 400 unless it is a plugin id (it names folders). */
function pluginIdOf(c: HttpContext): string {
  const id = c.req.param('id') ?? '';
  assertPluginId(id);
  return id;
}

function requireHost(kernel: Kernel): PluginHost {
  if (!kernel.plugins) throw new KernelError('plugins_unavailable', 'This gateway runs without a plugin host.', { status: 409 });
  return kernel.plugins;
}

/** Plugins (list, inspect, install/approve, remove, verify, restart, log) and connection checks. */
export function pluginRoutes(kernel: Kernel) {
  const app = new Hono<HttpEnv>();
  const inspections = new Map<string, { inspected: InspectedPlugin; database: string; timer: NodeJS.Timeout }>();

  app.get('/databases/:db/plugins', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    const host = requireHost(kernel);
    const plugins = host.list().map(({ manifest, ...plugin }) => {
      const approval = ws.pluginApprovals.get(plugin.id);
      // A built-in is trusted as built (pinned); one without a pin never starts, so it is not shown as approved.
      const approved = plugin.kind === 'builtin' ? plugin.integrity !== null : approval?.version === plugin.version && approval.integrity === plugin.integrity;
      return { ...plugin, ...summary(manifest), approved, approval: approval ?? null };
    });
    return c.json({ sandbox: host.sandbox, plugins });
  });

  app.post('/databases/:db/plugins/inspect', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    const host = requireHost(kernel);
    const body = await readBody(c, inspectBody);
    const inspected = await host.inspect(body.source);
    const id = newId('ins');
    const timer = setTimeout(() => {
      inspections.delete(id);
      void inspected.discard();
    }, INSPECTION_TTL_MS);
    timer.unref();
    inspections.set(id, { inspected, database: ws.name, timer });
    return c.json({
      inspection: id,
      plugin: summary(inspected.manifest),
      integrity: inspected.integrity,
      sandbox: inspected.sandbox,
      replaces: ws.pluginApprovals.get(inspected.manifest.id) ?? null,
      requireBwrap: ws.settings.get().requireBwrapForThirdParty,
    });
  });

  app.post('/databases/:db/plugins', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const host = requireHost(kernel);
    const body = await readBody(c, installBody);
    const pending = inspections.get(body.inspection);
    if (!pending || pending.database !== ws.name) {
      throw new KernelError('inspection_not_found', 'That inspection does not exist or expired; inspect the plugin again.', { status: 404 });
    }
    // Consent binds to what was shown: the package the operator saw is the one installed.
    if (pending.inspected.integrity !== body.integrity) {
      throw new KernelError('integrity_mismatch', 'The integrity does not match the inspected package; inspect it again.', { status: 409 });
    }
    inspections.delete(body.inspection);
    clearTimeout(pending.timer);
    const source = await host.install(pending.inspected);
    await ws.pluginApprovals.approve(
      { pluginId: source.manifest.id, version: source.manifest.version, integrity: source.integrity!, manifestHash: source.manifestHash },
      actor,
    );
    // A new version invalidates what was approved against the old one.
    await ws.db.write((tx) => ws.approvals.revalidatePending(tx, { connectorId: source.manifest.id }));
    return c.json({ plugin: { ...summary(source.manifest), integrity: source.integrity } }, 201);
  });

  app.delete('/databases/:db/plugins/:id', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const host = requireHost(kernel);
    const id = pluginIdOf(c);
    const listed = host.list().find((plugin) => plugin.id === id);
    if (listed?.kind === 'builtin') throw new KernelError('builtin_plugin', `"${id}" is a built-in connector; it cannot be removed.`, { status: 409 });
    if (ws.pluginApprovals.get(id)) await ws.pluginApprovals.revoke(id, actor);
    await host.remove(id);
    await ws.db.write((tx) => ws.approvals.revalidatePending(tx, { connectorId: id }));
    return c.json({ removed: true });
  });

  app.post('/databases/:db/plugins/:id/verify', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    const host = requireHost(kernel);
    const id = pluginIdOf(c);
    const listed = host.list().find((plugin) => plugin.id === id);
    if (!listed) throw new KernelError('not_found', `No plugin "${id}" is installed or built in.`, { status: 404 });
    const { kind, integrity, recorded } = await host.verify(id, listed.version);
    // An installed plugin is held to this database's approval, a built-in to the pin of the build that runs it.
    const approvedIntegrity = kind === 'builtin' ? recorded : (ws.pluginApprovals.get(id)?.integrity ?? null);
    return c.json({ id, version: listed.version, kind, integrity, approvedIntegrity, intact: approvedIntegrity !== null && approvedIntegrity === integrity });
  });

  app.post('/databases/:db/plugins/:id/restart', async (c) => {
    await workspaceFor(c, kernel);
    await requireHost(kernel).restart(pluginIdOf(c));
    return c.json({ restarted: true });
  });

  app.get('/databases/:db/plugins/:id/log', async (c) => {
    await workspaceFor(c, kernel);
    return c.json({ lines: requireHost(kernel).log(pluginIdOf(c)) });
  });

  app.post('/databases/:db/targets/:id/check', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, checkBody);
    const target = await ws.targets.requireTarget(c.req.param('id'));
    const profile = await ws.targets.requireProfile(body.profileId);
    if (profile.targetId !== target.id) throw new KernelError('invalid_input', 'That profile belongs to another target.', { status: 400 });
    const connector = ws.catalog.get(target.kind);
    if (!connector) throw new KernelError('connector_unavailable', `No connector for "${target.kind}" is installed.`, { status: 409 });
    requireHost(kernel);
    const result = await kernel.checkConnection(ws.name, connector, target, profile.id);
    const shown = { ...result, ...(result.message ? { message: ws.redaction.current().text(result.message) } : {}) };
    await ws.audit.append({ actor, event: 'target.checked', subject: { targetId: target.id, profileId: profile.id }, payload: { ok: result.ok, problem: result.problem ?? null, message: shown.message ?? null } });
    return c.json({ result: shown });
  });

  return app;
}
