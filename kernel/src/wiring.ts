/**
 * Part of the composition root: the HTTP app's narrow dependencies (http/deps.ts,
 * each route group's *RouteDeps) made from the kernel's modules. The one place
 * that knows both the routes' interfaces and the modules that implement them;
 * no route sees the Kernel, a Workspace, the vault or the pipeline.
 */
import { createMcp, type McpEndpoint } from './mcp/index.js';
import type { HttpDeps, ApprovalsRunner, ConnectionChecks, DatabaseGuard, DatabaseLifecycle } from './http/index.js';
import { KernelError } from './lib/errors.js';
import { scanHostKey } from './transports/index.js';
import type { Kernel } from './kernel.js';

/** The MCP edge over the kernel's token authenticator, pipeline and per-database read views. */
export function mcpOf(kernel: Kernel, getPort: () => number): McpEndpoint {
  return createMcp({
    tokens: kernel.tokens,
    pipeline: kernel.pipeline,
    database: (name) => kernel.workspace(name),
    clock: kernel.clock,
    log: kernel.log,
    onLocked: (listener) => kernel.onLocked(listener),
    getPort,
  });
}

export function httpDepsFromKernel(kernel: Kernel): HttpDeps {
  // Each accessor reads the database's services when a route asks: 423 if it was locked in between.
  const ws = (name: string) => kernel.workspace(name);
  const databases: DatabaseGuard = {
    isUnlocked: (name) => kernel.isUnlocked(name),
    exists: (name) => kernel.exists(name),
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
    sshKeys: (name) => ws(name).sshKeys,
    hostKeys: (name) => ws(name).hostKeys,
    scanHostKey: (name) => (host, port) => scanHostKey(host, port, ws(name).hostKeys),
    mcpEndpoint: (options) => mcpOf(kernel, options.getPort),
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
    changePassword: (name, currentPassword, newPassword, actor) => kernel.changePassword(name, currentPassword, newPassword, actor),
    exportTo: (name, file, password, actor) => kernel.exportTo(name, file, password, actor),
    importFrom: (file, password, name) => kernel.importFrom(file, password, name),
  };
}

/** The operator's Run goes through the same pipeline as an agent's call, as the operator's principal. */
function runnerOf(kernel: Kernel): ApprovalsRunner {
  return {
    run: (operator, requestId, note, options) => kernel.pipeline.runApproved(operator, requestId, note, options),
    async call(operator, input, options) {
      const outcome = await kernel.pipeline.call(operator, input, options);
      // The MCP switch stops only agents, so the operator's call always reaches a request.
      if (outcome.kind !== 'request') throw new KernelError('stopped', outcome.message, { status: 409 });
      return outcome.request;
    },
  };
}

/** Connection checks: the kernel opens the profile's credential in a scope of its own (kernel.checkConnection); the route never sees it. */
function connectionChecksOf(kernel: Kernel): ConnectionChecks {
  return {
    async check(database, input, actor) {
      const db = kernel.workspace(database);
      const target = await db.targets.requireTarget(input.targetId);
      const profile = await db.targets.requireProfile(input.profileId);
      if (profile.targetId !== target.id) throw new KernelError('invalid_input', 'That profile belongs to another target.', { status: 400 });
      const connector = db.catalog.get(target.kind);
      if (!connector) throw new KernelError('connector_unavailable', `No connector for "${target.kind}" is installed.`, { status: 409 });
      const result = await kernel.checkConnection(database, connector, target, profile.id);
      // The plugin host bounded and redacted it (connectors/plugin-text.ts); this database's own rules apply on top.
      const shown = db.redaction.current().value(result);
      await db.audit.append({
        actor,
        event: 'target.checked',
        subject: { targetId: target.id, profileId: profile.id },
        payload: { ok: result.ok, problem: result.problem ?? null, message: shown.message ?? null },
      });
      return shown;
    },
  };
}
