import { Hono } from 'hono';
import { secretFieldsOf, declaredFieldsOf } from '@aipermission/plugin-sdk/protocol';
import { KernelError } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { approvalVerdict, assertPluginId, describeVerdict, type InspectedPlugin, type PluginApprovalStore, type PluginHost } from '../../plugin-host/index.js';
import type { ApprovalStore } from '../../approvals/index.js';
import type { SettingsStore } from '../../settings/index.js';
import type { HttpContext, HttpEnv } from '../context.js';
import type { ConnectionChecks, DatabaseGuard, PerDatabase } from '../deps.js';
import { bodySchema, databaseFor, noPluginHost, readBody } from '../helpers.js';

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

/** What the plugin routes ask of the plugin host (it runs the plugins; this database's approvals decide which may run). */
export type PluginRouteHost = Pick<PluginHost, 'sandbox' | 'list' | 'inspect' | 'install' | 'remove' | 'verify' | 'restart' | 'log'>;

/** What the plugin routes use; `plugins` is absent in a gateway that runs without a plugin host. */
export interface PluginRouteDeps {
  databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>;
  plugins: PluginRouteHost | undefined;
  pluginApprovals: PerDatabase<Pick<PluginApprovalStore, 'get' | 'approve' | 'revoke'>>;
  settings: PerDatabase<Pick<SettingsStore, 'get'>>;
  /** A new, upgraded or removed plugin re-checks the pending requests approved against the old one. */
  approvals: PerDatabase<Pick<ApprovalStore, 'revalidateConnector'>>;
  connectionChecks: ConnectionChecks;
}

/** Plugins (list, inspect, install/approve, remove, verify, restart, log) and connection checks. */
export function pluginRoutes(deps: PluginRouteDeps) {
  const app = new Hono<HttpEnv>();
  const requireHost = (): PluginRouteHost => {
    if (!deps.plugins) throw noPluginHost();
    return deps.plugins;
  };
  const inspections = new Map<string, { inspected: InspectedPlugin; database: string; timer: NodeJS.Timeout }>();

  app.get('/databases/:db/plugins', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    const approvals = deps.pluginApprovals(name);
    const host = requireHost();
    const plugins = host.list().map(({ manifest, ...plugin }) => {
      const approval = approvals.get(plugin.id);
      if (plugin.kind === 'builtin') {
        // A built-in is trusted as built (pinned); one without a pin never starts, so it is not shown as approved.
        const approved = plugin.integrity !== null;
        return { ...plugin, ...summary(manifest), approved, approvalProblem: approved ? null : 'a built-in connector without a build-time pin: rebuild (pnpm run build) and restart the gateway', approval: approval ?? null };
      }
      // Installed: approved only if all of it (version, files, manifest, entry) is what this database approved.
      const verdict = approvalVerdict({ version: plugin.version, integrity: plugin.integrity, manifestHash: plugin.manifestHash, entry: plugin.entry, packageEntry: plugin.packageEntry }, approval);
      return { ...plugin, ...summary(manifest), approved: verdict.approved, approvalProblem: describeVerdict(verdict), approval: approval ?? null };
    });
    return c.json({ sandbox: host.sandbox, plugins });
  });

  app.post('/databases/:db/plugins/inspect', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    const [approvals, settings] = [deps.pluginApprovals(name), deps.settings(name)];
    const host = requireHost();
    const body = await readBody(c, inspectBody);
    // Inspection starts the package: where the database runs third-party code only inside bubblewrap, it is not started without it either.
    if (settings.get().requireBwrapForThirdParty && !host.sandbox.bwrap) {
      throw new KernelError(
        'bwrap_required',
        'This database only runs third-party connectors inside bubblewrap (requireBwrapForThirdParty), which is not available on this machine, so the package was not inspected (inspecting starts it). Install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; aip doctor checks it) and restart the gateway, or turn the setting off: aip settings set requireBwrapForThirdParty=false',
        { status: 409 },
      );
    }
    const inspected = await host.inspect(body.source);
    const id = newId('ins');
    const timer = setTimeout(() => {
      inspections.delete(id);
      void inspected.discard();
    }, INSPECTION_TTL_MS);
    timer.unref();
    inspections.set(id, { inspected, database: name, timer });
    return c.json({
      inspection: id,
      plugin: summary(inspected.manifest),
      integrity: inspected.integrity,
      sandbox: inspected.sandbox,
      // What it will reach once approved, and how this inspection ran it: said before consent.
      reach: inspected.reach,
      inspectedWith: inspected.inspection,
      replaces: approvals.get(inspected.manifest.id) ?? null,
      requireBwrap: settings.get().requireBwrapForThirdParty,
    });
  });

  app.post('/databases/:db/plugins', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const [pluginApprovals, approvals] = [deps.pluginApprovals(name), deps.approvals(name)];
    const host = requireHost();
    const body = await readBody(c, installBody);
    const pending = inspections.get(body.inspection);
    if (!pending || pending.database !== name) {
      throw new KernelError('inspection_not_found', 'That inspection does not exist or expired; inspect the plugin again.', { status: 404 });
    }
    // Consent binds to what was shown: the package the operator saw is the one installed.
    if (pending.inspected.integrity !== body.integrity) {
      throw new KernelError('integrity_mismatch', 'The integrity does not match the inspected package; inspect it again.', { status: 409 });
    }
    inspections.delete(body.inspection);
    clearTimeout(pending.timer);
    const source = await host.install(pending.inspected);
    await pluginApprovals.approve(
      { pluginId: source.manifest.id, version: source.manifest.version, integrity: source.integrity!, manifestHash: source.manifestHash, entry: source.entry },
      actor,
    );
    // A new version invalidates what was approved against the old one.
    await approvals.revalidateConnector(source.manifest.id);
    return c.json({ plugin: { ...summary(source.manifest), integrity: source.integrity } }, 201);
  });

  app.delete('/databases/:db/plugins/:id', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const [pluginApprovals, approvals] = [deps.pluginApprovals(name), deps.approvals(name)];
    const host = requireHost();
    const id = pluginIdOf(c);
    const listed = host.list().find((plugin) => plugin.id === id);
    if (listed?.kind === 'builtin') throw new KernelError('builtin_plugin', `"${id}" is a built-in connector; it cannot be removed.`, { status: 409 });
    if (pluginApprovals.get(id)) await pluginApprovals.revoke(id, actor);
    await host.remove(id);
    await approvals.revalidateConnector(id);
    return c.json({ removed: true });
  });

  app.post('/databases/:db/plugins/:id/verify', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    const approvals = deps.pluginApprovals(name);
    const host = requireHost();
    const id = pluginIdOf(c);
    const listed = host.list().find((plugin) => plugin.id === id);
    if (!listed) throw new KernelError('not_found', `No plugin "${id}" is installed or built in.`, { status: 404 });
    const report = await host.verify(id, listed.version);
    const { kind, integrity, manifestHash, entry } = report;
    if (kind === 'builtin') {
      // A built-in is held to the pin of the build that runs it.
      const intact = report.recorded !== null && report.recorded === integrity;
      return c.json({ id, version: listed.version, kind, integrity, approvedIntegrity: report.recorded, manifestHash, entry, intact, differences: intact ? [] : [`files (${report.problem ?? 'they differ from the build-time pin'})`], problem: report.problem });
    }
    // An installed plugin is held to this database's approval: files, manifest and entry as they are on disk now.
    const approval = approvals.get(id);
    const verdict = approvalVerdict({ version: listed.version, integrity, manifestHash, entry, packageEntry: report.packageEntry }, approval);
    return c.json({
      id,
      version: listed.version,
      kind,
      integrity,
      approvedIntegrity: approval?.integrity ?? null,
      manifestHash,
      approvedManifestHash: approval?.manifestHash ?? null,
      entry,
      approvedEntry: approval ? (approval.entry ?? report.packageEntry) : null,
      intact: verdict.approved,
      differences: verdict.approved || verdict.approval === 'none' ? [] : verdict.differences,
      problem: report.problem ?? describeVerdict(verdict),
    });
  });

  app.post('/databases/:db/plugins/:id/restart', async (c) => {
    await databaseFor(c, deps.databases);
    await requireHost().restart(pluginIdOf(c));
    return c.json({ restarted: true });
  });

  app.get('/databases/:db/plugins/:id/log', async (c) => {
    await databaseFor(c, deps.databases);
    return c.json({ lines: requireHost().log(pluginIdOf(c)) });
  });

  // The check runs with the profile's credential lease, which only the connection checks see (never this route).
  app.post('/databases/:db/targets/:id/check', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const body = await readBody(c, checkBody);
    return c.json({ result: await deps.connectionChecks.check(name, { targetId: c.req.param('id'), profileId: body.profileId }, actor) });
  });

  return app;
}
