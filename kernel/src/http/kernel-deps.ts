import { randomBytes } from 'node:crypto';
import { KernelError } from '../lib/errors.js';
import type { Kernel } from '../kernel.js';
import { createMcpEndpoint } from '../mcp/index.js';
import type { HttpDeps } from './app.js';
import type { ApprovalsRunner, ConnectionChecks, DatabaseGuard, DatabaseLifecycle } from './deps.js';
import { noPluginHost } from './helpers.js';

/**
 * Builds the HTTP app's dependencies from today's Kernel: the only file in
 * http/ that knows the Kernel, the Workspace, the vault handle and the
 * pipeline's signature. When those are replaced, this is what is rewired;
 * the routes keep their narrow interfaces (deps.ts, routes/*.ts).
 */
export function httpDepsFromKernel(kernel: Kernel): HttpDeps {
  // Each accessor reads the database's workspace when a route asks: 423 if it was locked in between.
  const ws = (name: string) => kernel.workspace(name);
  const databases: DatabaseGuard = {
    isUnlocked: (name) => kernel.isUnlocked(name),
    exists: (name) => kernel.vault.exists(name),
    anyUnlocked: () => kernel.unlocked().length > 0,
  };
  return {
    clock: kernel.clock,
    log: kernel.log,
    dataDir: kernel.dataDir,
    onLocked: (listener) => kernel.onLocked(listener),
    events: kernel.events,
    plugins: kernel.plugins,
    databases,
    lifecycle: lifecycleOf(kernel),
    runner: runnerOf(kernel),
    connectionChecks: connectionChecksOf(kernel),
    settings: (name) => ws(name).settings,
    mcpSwitch: (name) => ws(name).mcp,
    redaction: (name) => ws(name).redaction,
    catalog: (name) => ws(name).catalog,
    targets: (name) => ws(name).targets,
    tokens: (name) => ws(name).tokens,
    grants: (name) => ws(name).grants,
    approvals: (name) => ws(name).approvals,
    audit: (name) => ws(name).audit,
    messages: (name) => ws(name).messages,
    pluginApprovals: (name) => ws(name).pluginApprovals,
    mcpEndpoint: (options) => createMcpEndpoint(kernel, options),
  };
}

function lifecycleOf(kernel: Kernel): DatabaseLifecycle {
  return {
    list: () => kernel.listDatabases(),
    unlockedNames: () => kernel.unlocked().map((ws) => ws.name),
    create: (name, password) => kernel.createDatabase(name, password),
    async unlock(name, password, actor) {
      await kernel.unlock(name, password, actor);
    },
    async provePassword(name, password, actor) {
      await kernel.provePassword(name, password, actor);
    },
    lock: (name, actor) => kernel.lock(name, actor),
    rollbackWarning: (name) => kernel.rollbackWarning(name),
    async changePassword(name, currentPassword, newPassword, actor) {
      const ws = await kernel.provePassword(name, currentPassword, actor);
      // Invariant 6, no audit, no action: the change is on the record before it is made.
      await ws.audit.append({ actor, event: 'database.password_changing', subject: { database: name } });
      try {
        await ws.handle.changePassword(currentPassword, newPassword);
      } catch (error) {
        await ws.audit
          .append({ actor, event: 'database.password_change_failed', subject: { database: name }, payload: { code: (error as { code?: string }).code ?? 'internal_error' } })
          .catch(() => undefined);
        throw error;
      }
      await ws.audit.append({ actor, event: 'database.password_changed', subject: { database: name } });
    },
    async exportTo(name, file, password, actor) {
      // Through the password gate like every other check: no unthrottled way to test a guess.
      const ws = await kernel.provePassword(name, password, actor);
      await ws.audit.append({ actor, event: 'database.exported', subject: { database: name } });
      await ws.handle.exportTo(file, password);
    },
    importFrom: (file, password, name) => kernel.vault.importDatabase(file, password, name),
  };
}

/** The only place that knows how the pipeline is asked to run an approved request. */
function runnerOf(kernel: Kernel): ApprovalsRunner {
  return {
    run: (database, requestId, actor, note, options) => kernel.pipeline.runApproved(kernel.workspace(database), requestId, actor, note, options),
  };
}

/** Connection checks: the target's config and the profile's lease go from the stores to the plugin host, nowhere else. */
function connectionChecksOf(kernel: Kernel): ConnectionChecks {
  return {
    async check(database, input, actor) {
      const ws = kernel.workspace(database);
      const target = await ws.targets.requireTarget(input.targetId);
      const profile = await ws.targets.requireProfile(input.profileId);
      if (profile.targetId !== target.id) throw new KernelError('invalid_input', 'That profile belongs to another target.', { status: 400 });
      const connector = ws.catalog.get(target.kind);
      if (!connector) throw new KernelError('connector_unavailable', `No connector for "${target.kind}" is installed.`, { status: 409 });
      if (!kernel.plugins) throw noPluginHost();
      const result = await kernel.plugins.checkConnection(connector, target.config, await ws.targets.lease(profile.id), `chk_${randomBytes(8).toString('hex')}`);
      const shown = { ...result, ...(result.message ? { message: ws.redaction.current().text(result.message) } : {}) };
      await ws.audit.append({
        actor,
        event: 'target.checked',
        subject: { targetId: target.id, profileId: profile.id },
        payload: { ok: result.ok, problem: result.problem ?? null, message: shown.message ?? null },
      });
      return shown;
    },
  };
}
