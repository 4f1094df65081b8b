import { rm } from 'node:fs/promises';
import { ResponseError } from 'vscode-jsonrpc/node';
import type { InvocationScope, InvocationScopes } from '../invocations/index.js';
import { ActionError } from '@aipermission/plugin-sdk';
import { declaredFieldsOf, isActionFailureData, WireErrorCodes, type ConnectionCheckResult, type CredentialLease } from '@aipermission/plugin-sdk/protocol';
import { canonicalHash } from '../lib/canonical.mjs';
import { confinedPath } from '../lib/confine.js';
import type { Clock } from '../lib/clock.js';
import { KernelError } from '../lib/errors.js';
import { OutcomeUnknown, pluginText, type ActionExecutor, type ConnectorCatalog, type ConnectorDescriptor, type Invocation } from '../connectors/index.js';
import { createTransports, type EndpointHandle, type Transports } from '../transports/index.js';
import { isApproved, type PluginApproval } from './approval-check.js';
import { describeChanges, loadPins, readPinnedSet, writePrivateCopy, type BuiltinPins } from './builtin-pins.js';
import { descriptorFor } from './descriptor.js';
import { InspectionFailed, inspectManifest } from './inspect.js';
import { installedOnDisk, verifiedInstalledCode, type VerifyReport } from './installed-code.js';
import { createManifestCache } from './manifest-cache.js';
import { readPackageFiles } from './package-files.js';
import { PluginLostDuringCall, PluginNotReached, PluginUnavailable, type PluginSshServices } from './process.js';
import { reachOf, type InspectionSandbox, type PluginReach } from './reach.js';
import { CrashBudget } from './crash-budget.js';
import { createHandedSecrets } from './handed-secrets.js';
import { combinedStatus, partitionKey, partitionOf, partitionScratchDir, PROCESS_LIMITS, ProcessBudget, scopesOfPartition, type Partition } from './partitions.js';
import {
  assertPluginId,
  commitInstall,
  entryOf,
  loadBuiltins,
  loadInstalled,
  removeInstalled,
  scratchDirFor,
  sourceFromManifest,
  stagePlugin,
  type PluginSource,
} from './registry.js';
import { sandboxLevel, type BwrapMode, type SandboxLevel } from './sandbox.js';
import { PluginSupervisor, SUPERVISOR_DEFAULTS, type PluginStatus, type PreparedCode, type SupervisorOptions } from './supervisor.js';

export type { PluginApproval, VerifyReport };

export interface InspectedPlugin {
  stagedDir: string;
  entry: string;
  manifest: PluginSource['manifest'];
  manifestHash: string;
  /** The integrity of the bytes the inspection ran, which the consent binds to. */
  integrity: string;
  /** The sandbox it will run in once approved. */
  sandbox: SandboxLevel;
  /** What it will be able to reach once approved (the consent screen says it). */
  reach: PluginReach;
  /** How the inspection ran it (before consent). */
  inspection: InspectionSandbox;
  discard(): Promise<void>;
}

export interface PluginListing {
  id: string;
  version: string;
  title: string;
  kind: 'builtin' | 'installed';
  manifest: PluginSource['manifest'];
  /** Canonical SHA-256 of the manifest the kernel describes it with. */
  manifestHash: string;
  /** The entry file it starts. */
  entry: string;
  /** An installed plugin: the entry its package.json names. */
  packageEntry: string | null;
  integrity: string | null;
  status: PluginStatus;
}

export interface PluginHost {
  readonly sandbox: SandboxLevel;
  /** The connectors one database may use: built-ins plus the installed plugins it approved (same version, integrity, manifest and entry). */
  catalogFor(approvals: () => readonly PluginApproval[]): ConnectorCatalog;
  readonly executor: ActionExecutor;
  /** Asks the plugin whether it can reach the target with the scope's credential (a scope of its own, disposed by the caller). */
  checkConnection(connector: ConnectorDescriptor, target: Record<string, unknown>, scope: InvocationScope, policy?: { requireBwrapForThirdParty: boolean }): Promise<ConnectionCheckResult>;
  list(): PluginListing[];
  log(id: string): readonly string[];
  restart(id: string): Promise<void>;
  /** Fetches and stages a plugin, starts it once in the sandbox to read its manifest, and reports what it would be approved as. */
  inspect(source: string): Promise<InspectedPlugin>;
  install(inspected: InspectedPlugin): Promise<PluginSource>;
  /**
   * Recomputes a plugin's integrity: an installed one's package (recorded:
   * what was installed) with the manifest and entry its install record on
   * disk names now, a built-in's pinned set (recorded: its build-time pin;
   * integrity null when its files cannot be read as a pinned set).
   */
  verify(id: string, version: string): Promise<VerifyReport>;
  remove(id: string): Promise<void>;
  reload(): Promise<void>;
  /** Stops the processes serving a database's profiles (it was locked: its leases leave the plugins too). */
  stopDatabase(database: string): Promise<void>;
  stopAll(): Promise<void>;
}

export interface PluginHostOptions {
  dataDir: string;
  /** The registry of invocation scopes the pipeline opens; plugin messages that name an invocation are answered from it. */
  scopes: Pick<InvocationScopes, 'resolve'>;
  /** The kernel's SSH signer and host-key check, answering kernel/sign and kernel/hostKey (invariants 2 and 3). */
  ssh?: PluginSshServices;
  clock: Clock;
  log: (line: string) => void;
  kernelInfo: { name: string; version: string };
  bwrap?: BwrapMode;
  /** Where the built-in connectors live (default: this repository's plugins/). */
  builtinRoot?: string;
  /** Which folders under builtinRoot are built-ins (default: the shipped connectors). */
  builtins?: readonly string[];
  /**
   * The built-ins' build-time pins: a pins file (default: the one the kernel
   * build wrote, kernel/dist/builtin-pins.json) or the pins themselves
   * (tests). Read once, here, at start.
   */
  builtinPins?: string | BuiltinPins;
  supervisor?: Partial<Pick<SupervisorOptions, 'idleMs' | 'maxConcurrent' | 'restartBudget' | 'handshakeTimeoutMs' | 'cancelGraceMs' | 'ioLimits'> & { -readonly [K in keyof typeof PROCESS_LIMITS]: number }>;
  /** The kernel's transports, which open each invocation's endpoint (default: the host's own). */
  transports?: Transports;
  /**
   * Called after a plugin's code passed its check and was prepared to run,
   * just before it is spawned. Tests use it to rewrite the files on disk in
   * exactly that window (the race invariant 5 closes); nothing else should.
   */
  onCodeVerified?: (pluginId: string) => Promise<void> | void;
}

// Everything a database's approval pins is in the key, so an edited install record never shares a descriptor or a process with the approved one.
const keyOf = (source: PluginSource) => `${source.manifest.id}@${source.manifest.version}@${source.integrity ?? source.kind}@${source.manifestHash}@${source.entry}`;

/**
 * Where the kernel connects for a direct target: the host and port of the
 * target's own configuration (or the connector's default port), never an
 * address a plugin names. The host is also the name TLS must verify.
 */
function directAddress(connector: ConnectorDescriptor, config: Record<string, unknown>): { host: string; port: number; serverName: string } | null {
  if (!connector.transports?.includes('direct') || typeof config.host !== 'string' || config.host === '') return null;
  const port = typeof config.port === 'number' ? config.port : connector.defaultPort;
  return port ? { host: config.host, port, serverName: config.host } : null;
}

/**
 * What the kernel saw of the target, added to a failure the plugin reports
 * while the kernel could not reach the target (the plugin sees only a
 * closed connection).
 */
function dialNote(endpoint: EndpointHandle | null): string {
  const failure = endpoint?.dialFailure;
  return failure ? ` (The gateway could not connect to ${failure.address}: ${failure.reason}.)` : '';
}

/**
 * Invariant 1: the lease carries exactly the fields the credential schema
 * declares, from the one profile this invocation uses, and nothing else.
 */
export function leaseFor(connector: ConnectorDescriptor & { plugin: PluginSource }, scope: Pick<InvocationScope, 'lease' | 'credentialKind'>): CredentialLease {
  const schema = connector.plugin.manifest.credentialSchemas[scope.credentialKind];
  if (!schema) {
    throw new ActionError('config', `The credential profile is of kind "${scope.credentialKind}", which the ${connector.id} connector does not declare. Edit the profile.`);
  }
  return scope.lease(declaredFieldsOf(schema));
}

/** Why an installed connector is not started where the database requires bubblewrap and there is none (requireBwrapForThirdParty). */
const BWRAP_REQUIRED =
  'This database only runs third-party connectors inside bubblewrap (requireBwrapForThirdParty), which is not available on this machine, so the connector was not started. Install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; aip doctor checks it) and restart the gateway, or turn the setting off: aip settings set requireBwrapForThirdParty=false';

function translate(error: unknown, id: string): Error {
  if (error instanceof PluginLostDuringCall) return new OutcomeUnknown(error.message);
  // Never reached a live plugin: nothing ran, and the next call starts a fresh process (issue 16 item 5).
  if (error instanceof PluginNotReached) return new ActionError('system', `${error.message} Retrying is safe: the gateway starts the ${id} connector again.`, { retryable: true });
  if (error instanceof PluginUnavailable) return new ActionError('system', `The ${id} connector is unavailable: it ${error.message.replace(/\.$/, '')}. The action did not run.`, { retryable: true });
  if (error instanceof ResponseError) {
    if (error.code === WireErrorCodes.ActionFailed && isActionFailureData(error.data)) {
      return new ActionError(error.data.kind, error.data.userMessage, { retryable: error.data.retryable });
    }
    if (error.code === WireErrorCodes.RequestCancelled) return new ActionError('transient', 'The action was cancelled.', { retryable: true });
    if (error.code === WireErrorCodes.UnknownAction) return new ActionError('system', `The ${id} connector does not know this action (is it the approved version?).`);
    if (error.code === WireErrorCodes.InvalidParams) return new ActionError('config', `The ${id} connector refused the input: ${error.message.slice(0, 500)}`);
  }
  return new ActionError('system', `The ${id} connector failed unexpectedly; the plugin log has details.`);
}

export async function createPluginHost(options: PluginHostOptions): Promise<PluginHost> {
  // Without the shared registry no plugin message could be matched to its invocation: refuse to start half-wired.
  if (!options.scopes || typeof options.scopes.resolve !== 'function') throw new TypeError('createPluginHost needs the invocation scopes registry the pipeline opens scopes in (options.scopes).');
  const bwrap = options.bwrap ?? 'auto';
  const { maxProcessesPerPlugin = PROCESS_LIMITS.maxProcessesPerPlugin, maxProcesses = PROCESS_LIMITS.maxProcesses, ...supervisorOverrides } = options.supervisor ?? {};
  const supervisorOptions = { ...SUPERVISOR_DEFAULTS, ...supervisorOverrides };
  const transports = options.transports ?? createTransports({ log: options.log });
  let sources: PluginSource[] = [];
  const descriptors = new Map<string, ReturnType<typeof descriptorFor>>();
  // One supervisor (one process at a time) per plugin code and credential profile: see partitions.ts.
  const supervisors = new Map<string, PluginSupervisor>();
  const crashBudgets = new Map<string, CrashBudget>();
  const partitions = new WeakMap<PluginSupervisor, Partition>();
  /** Stops of supervisors already taken out of the map (a locked database's). */
  const stopping = new Set<Promise<void>>();
  const processes = new ProcessBudget({ maxProcessesPerPlugin, maxProcesses }, () => supervisors.values(), () => options.clock.now());
  // Every secret handed to any plugin process this run: all a plugin sends is redacted with them (handed-secrets.ts).
  const handed = createHandedSecrets();
  /** The central bound and redaction (connectors/plugin-text.ts) of what plugins send the host itself: log lines, status text. */
  const hostText = () => pluginText(handed.redactor());

  // Read once: an edit of the pins file (or of a built-in) after this changes nothing.
  const { pins, from: pinsFrom } = await loadPins(options.builtinPins, options.log);
  // Private copies of built-in code for runs without bubblewrap; a previous gateway's leftovers go.
  const runRoot = confinedPath(options.dataDir, 'plugin-run');
  await rm(runRoot, { recursive: true, force: true });
  // Endpoint socket folders of a previous gateway: nothing listens there any more.
  const endpointRoot = confinedPath(options.dataDir, 'plugin-endpoints');
  await rm(endpointRoot, { recursive: true, force: true });
  // Scratch lives at most as long as the gateway run: what a plugin left there (a lease it kept)
  // was handed out before this run's record of handed secrets began, so it is not kept either.
  await rm(confinedPath(options.dataDir, 'plugin-scratch'), { recursive: true, force: true });

  const manifests = createManifestCache();
  const load = async () => {
    sources = [
      ...(await loadBuiltins(options.builtinRoot, options.log, options.builtins, pins, manifests.compile)),
      ...(await loadInstalled(options.dataDir, options.log, manifests.compile)),
    ];
    // What no loaded plugin uses any more goes (each install, removal and
    // reload passes here; keeping it was the plugin-removal leak): compiled
    // manifests, descriptors, and idle supervisors of removed or replaced code.
    manifests.retainOnly(sources.map((source) => source.manifestHash));
    const live = new Set(sources.map(keyOf));
    for (const key of descriptors.keys()) if (!live.has(key)) descriptors.delete(key);
    for (const key of crashBudgets.keys()) if (!live.has(key)) crashBudgets.delete(key);
    for (const [key, s] of supervisors) {
      const status = s.status();
      if (live.has(keyOf(s.source)) || status.inFlight > 0 || status.queued > 0) continue;
      supervisors.delete(key);
      await s.stop();
    }
  };
  await load();

  /**
   * Invariant 8: a built-in runs only the code the kernel was built with. Its
   * pinned set is read into memory and hashed; on a match the plugin gets
   * exactly those bytes (under bubblewrap through file descriptors into a
   * read-only tmpfs, so nothing written to disk after the check can reach it;
   * without bubblewrap from a fresh private copy of them). Anything else
   * refuses the start with what changed and what to do.
   */
  const verifiedBuiltinCode = async (source: PluginSource): Promise<PreparedCode> => {
    const id = source.manifest.id;
    if (!source.integrity || !source.pinnedFiles) {
      throw new PluginUnavailable(`is a built-in connector without a build-time integrity pin (none for it in ${pinsFrom}), so it is not started. Build the kernel after the plugins (pnpm run build) and restart the gateway`);
    }
    let now: Awaited<ReturnType<typeof readPinnedSet>>;
    try {
      now = await readPinnedSet(source.dir);
    } catch (error) {
      throw new PluginUnavailable(`is a built-in connector whose files cannot be checked against its build-time pin (${(error as Error).message}), so it is not started. Restore them or rebuild (pnpm run build), then restart the gateway`);
    }
    if (now.integrity !== source.integrity) {
      throw new PluginUnavailable(
        `is a built-in connector whose files differ from its build-time pin (${describeChanges(source.pinnedFiles, now.hashes)}; integrity ${now.integrity}, built ${source.integrity}), so it is not started. If the change is yours, rebuild (pnpm run build) and restart the gateway`,
      );
    }
    if (sandboxLevel(bwrap).bwrap) return { files: now.files };
    const copy = await writePrivateCopy(runRoot, id, now.files);
    return { pluginDir: copy.dir, dispose: copy.dispose };
  };

  const descriptor = (source: PluginSource) => {
    const key = keyOf(source);
    let found = descriptors.get(key);
    if (!found) {
      found = descriptorFor(source);
      descriptors.set(key, found);
    }
    return found;
  };

  const crashBudgetOf = (source: PluginSource) => {
    const key = keyOf(source);
    let found = crashBudgets.get(key);
    if (!found) {
      found = new CrashBudget(supervisorOptions.restartBudget, options.clock, (reason) => options.log(`[kernel] plugin ${source.manifest.id} quarantined: ${reason}`));
      crashBudgets.set(key, found);
    }
    return found;
  };

  /** The supervisor of one plugin's code for one credential profile (partitions.ts): its own process, scratch and endpoints. */
  const supervisor = (source: PluginSource, partition: Partition) => {
    const key = partitionKey(keyOf(source), partition);
    let found = supervisors.get(key);
    if (!found) {
      found = new PluginSupervisor(source, {
        ...supervisorOptions,
        bwrap,
        scratchDir: partitionScratchDir(options.dataDir, source.manifest.id, partition),
        endpointRoot,
        closeEndpoints: (owner) => transports.closeOwner(owner),
        kernelInfo: options.kernelInfo,
        clock: options.clock,
        log: options.log,
        redact: (line) => hostText().logLine(line),
        // A process answers plugin messages only for invocations of its own profile.
        scopes: scopesOfPartition(options.scopes, partition),
        ...(options.ssh ? { ssh: options.ssh } : {}),
        crashBudget: crashBudgetOf(source),
        onIdle: () => processes.notify(),
        beforeStart: async () => {
          // Files changed since approval (or the build) refuse the start; otherwise the plugin gets the checked bytes themselves.
          const code = source.kind === 'installed' ? await verifiedInstalledCode(source, { bwrap: sandboxLevel(bwrap).bwrap, runRoot }) : await verifiedBuiltinCode(source);
          try {
            await options.onCodeVerified?.(source.manifest.id);
          } catch (error) {
            await code.dispose?.();
            throw error;
          }
          return code;
        },
      });
      supervisors.set(key, found);
      partitions.set(found, partition);
    }
    return found;
  };

  /**
   * Opens the endpoint of one call (invariant 3) for the plugin process that
   * runs it: relayed by the kernel to the target's configured address, and
   * accepting new connections only until the returned handle is closed,
   * which the caller does when the call ends. Null for a connector without a
   * direct address. A connection check gets an endpoint of its own.
   */
  const openEndpointFor = async (
    running: PluginSupervisor,
    connector: ConnectorDescriptor,
    call: { targetId: string; profileId: string; config: Record<string, unknown>; reuse: 'shared' | 'private'; label?: string },
  ): Promise<EndpointHandle | null> => {
    const address = directAddress(connector, call.config);
    if (!address) return null;
    try {
      return await transports.openEndpoint({
        owner: running.endpointOwner,
        connectorId: connector.id,
        targetId: call.targetId,
        profileId: call.profileId,
        ...address,
        where: await running.endpointPlace(),
        reuse: call.reuse,
        ...(call.label ? { label: call.label } : {}),
      });
    } catch (error) {
      throw new ActionError('system', `The gateway could not open the connection endpoint for the ${connector.id} connector: ${(error as Error).message}.`, { retryable: true });
    }
  };

  const pluginOf = (connector: ConnectorDescriptor): ReturnType<typeof descriptorFor> => {
    const plugin = (connector as Partial<ReturnType<typeof descriptorFor>>).plugin;
    if (!plugin) throw new ActionError('system', `The ${connector.id} connector is not a plugin this host runs.`);
    return connector as ReturnType<typeof descriptorFor>;
  };

  const host: PluginHost = {
    sandbox: sandboxLevel(bwrap),
    catalogFor(approvals) {
      const visible = (): PluginSource[] => {
        const approved = approvals();
        const byId = new Map<string, PluginSource>();
        for (const source of sources) {
          if (source.kind === 'builtin') {
            if (!byId.has(source.manifest.id)) byId.set(source.manifest.id, source);
            continue;
          }
          // Approved means all of it is what this database approved, never what the install record on disk says (invariant 5).
          if (isApproved(source, approved.find((a) => a.pluginId === source.manifest.id))) byId.set(source.manifest.id, source);
        }
        return [...byId.values()];
      };
      return {
        get: (kind) => {
          const source = visible().find((s) => s.manifest.id === kind);
          return source ? descriptor(source) : undefined;
        },
        list: () => visible().map(descriptor),
      };
    },
    executor: {
      async invoke(invocation: Invocation) {
        const connector = pluginOf(invocation.connector);
        const source = connector.plugin;
        if (source.kind === 'installed' && invocation.policy?.requireBwrapForThirdParty && !host.sandbox.bwrap) throw new ActionError('config', BWRAP_REQUIRED);
        const { scope } = invocation;
        const credentials = leaseFor(connector, scope);
        handed.remember(scope.secretValues());
        // The process of this profile alone (partitions.ts); a new one may have to wait for a free place.
        const running = supervisor(source, partitionOf(scope));
        let endpoint: EndpointHandle | null = null;
        let release: (() => void) | undefined;
        try {
          release = await processes.admit(running, invocation.signal);
          // The endpoint belongs to the invocation's scope: it stops relaying new connections when the scope is disposed (the call ended).
          const opened = await openEndpointFor(running, connector, { targetId: scope.targetId, profileId: scope.profileId, config: invocation.target.config, reuse: 'shared' });
          endpoint = opened ? scope.own(opened) : null;
          return await running.invoke(
            {
              invocationId: invocation.invocationId,
              action: invocation.action.name,
              input: invocation.input,
              target: invocation.target.config,
              credentials,
              endpoint: endpoint?.endpoint ?? null,
              limits: invocation.action.limits,
            },
            invocation.signal,
            (value) => invocation.onProgress(value),
          );
        } catch (error) {
          const failure = error instanceof ActionError ? error : translate(error, connector.id);
          // A network failure the plugin reports is told with what the kernel saw of the target.
          const note = failure instanceof ActionError && failure.kind === 'transient' ? dialNote(endpoint) : '';
          if (note && failure instanceof ActionError) throw new ActionError(failure.kind, `${failure.userMessage}${note}`, { retryable: failure.retryable });
          throw failure;
        } finally {
          release?.();
        }
      },
      handedSecrets: () => handed.all(),
    },
    async checkConnection(connectorDescriptor, target, scope, policy) {
      const connector = pluginOf(connectorDescriptor);
      // A check starts the plugin like a call does: the same policy refuses it first.
      if (connector.plugin.kind === 'installed' && policy?.requireBwrapForThirdParty && !host.sandbox.bwrap) return { ok: false, problem: 'unknown', message: BWRAP_REQUIRED };
      const invocationId = scope.invocationId;
      handed.remember(scope.secretValues());
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 15_000);
      let release: (() => void) | undefined;
      try {
        // The check runs in the process of its profile, like the profile's calls.
        const running = supervisor(connector.plugin, partitionOf(scope));
        release = await processes.admit(running, controller.signal);
        // A check tests a fresh connection: an endpoint of its own, owned by the check's scope and closed (with what it relayed) when the check ends.
        const opened = await openEndpointFor(running, connector, {
          targetId: scope.targetId,
          profileId: scope.profileId,
          config: target,
          reuse: 'private',
          label: `the ${connector.id} endpoint of connection check ${invocationId}`,
        });
        const endpoint = opened ? scope.own(opened) : null;
        // Believed only in its protocol shape, redacted and bounded (connectors/plugin-text.ts) before anything is added to it.
        const result = hostText().checkResult(await running.check({ invocationId, target, credentials: leaseFor(connector, scope), endpoint: endpoint?.endpoint ?? null }, controller.signal));
        if (result.ok || !endpoint?.dialFailure) return result;
        const problem = result.problem === 'network' || result.problem === 'unknown' || result.problem === undefined ? (endpoint.dialFailure.timedOut ? 'timeout' : 'network') : result.problem;
        return { ...result, problem, message: `${result.message ?? 'The connection failed.'}${dialNote(endpoint)}` };
      } catch (error) {
        const translated = error instanceof ActionError ? error : translate(error, connector.id);
        // A failure can quote the plugin (a refused handshake, its own error): through the same bound as its messages.
        return { ok: false, problem: 'unknown', message: hostText().line(translated instanceof ActionError ? translated.userMessage : translated.message) };
      } finally {
        clearTimeout(timer);
        release?.();
      }
    },
    list() {
      const text = hostText();
      return sources.map((source) => {
        const key = keyOf(source);
        const status = combinedStatus(
          { id: source.manifest.id, version: source.manifest.version, sandbox: host.sandbox },
          [...supervisors.values()].filter((s) => keyOf(s.source) === key).map((s) => s.status()),
          crashBudgets.get(key)?.quarantined ?? null,
        );
        // Status text can quote the plugin (why it failed to start): bounded and redacted like everything it sends.
        if (status.lastError !== null) status.lastError = text.message(status.lastError);
        if (status.quarantined) status.quarantined = { ...status.quarantined, reason: text.message(status.quarantined.reason) };
        return {
          id: source.manifest.id,
          version: source.manifest.version,
          title: source.manifest.title,
          kind: source.kind,
          manifest: source.manifest,
          manifestHash: source.manifestHash,
          entry: source.entry,
          packageEntry: source.packageEntry ?? null,
          integrity: source.integrity,
          status,
        };
      });
    },
    log(id) {
      assertPluginId(id);
      return [...supervisors.values()].filter((s) => s.source.manifest.id === id).flatMap((s) => [...s.logLines]);
    },
    async restart(id) {
      assertPluginId(id);
      const matching = [...supervisors.values()].filter((s) => s.source.manifest.id === id);
      if (matching.length === 0 && !sources.some((s) => s.manifest.id === id)) throw new KernelError('not_found', `There is no plugin "${id}".`, { status: 404 });
      for (const s of matching) {
        await s.stop();
        s.release();
      }
      for (const source of sources) if (source.manifest.id === id) crashBudgetOf(source).release();
    },
    async inspect(spec) {
      const staged = await stagePlugin(spec, options.dataDir);
      try {
        const entry = await entryOf(staged.dir);
        // Read and hashed once: the inspection runs these bytes, and consent binds to their integrity.
        const pkg = await readPackageFiles(staged.dir);
        let inspected: Awaited<ReturnType<typeof inspectManifest>>;
        try {
          inspected = await inspectManifest({ files: pkg.files, entry, bwrap, runRoot, kernelInfo: options.kernelInfo, redact: (line) => hostText().logLine(line), log: options.log });
        } catch (error) {
          const lines = error instanceof InspectionFailed ? error.logLines : [];
          // What it said (a refused handshake) is the plugin's text: bounded and redacted like the rest of it.
          throw new KernelError('invalid_plugin', hostText().message(`The plugin did not start: it ${(error as Error).message}. Its log: ${lines.slice(-5).join(' | ') || '(empty)'}`));
        }
        let source: PluginSource;
        try {
          source = sourceFromManifest('installed', staged.dir, entry, inspected.manifest, pkg.integrity, manifests.compile);
        } catch (error) {
          throw new KernelError('invalid_manifest', (error as Error).message);
        }
        if (sources.some((s) => s.kind === 'builtin' && s.manifest.id === source.manifest.id)) {
          throw new KernelError('plugin_conflict', `"${source.manifest.id}" is the id of a built-in connector; a third-party plugin cannot replace it.`, { status: 409 });
        }
        const sandbox = sandboxLevel(bwrap);
        return {
          stagedDir: staged.dir,
          entry,
          manifest: source.manifest,
          manifestHash: canonicalHash(source.manifest),
          integrity: pkg.integrity,
          sandbox,
          // Each credential profile's process gets a scratch folder of its own under this one.
          reach: reachOf(sandbox, scratchDirFor(options.dataDir, source.manifest.id)),
          inspection: inspected.sandbox,
          discard: staged.cleanup,
        };
      } catch (error) {
        await staged.cleanup();
        throw error;
      }
    },
    async install(inspected) {
      // Consent was given to the inspected bytes: a staged package that changed since is not installed (and would not start anyway).
      const now = await readPackageFiles(inspected.stagedDir).catch(() => null);
      if (now?.integrity !== inspected.integrity) {
        await inspected.discard();
        throw new KernelError('integrity_mismatch', 'The staged package changed on disk after it was inspected; nothing was installed. Inspect it again.', { status: 409 });
      }
      const dir = await commitInstall(inspected.stagedDir, options.dataDir, {
        id: inspected.manifest.id,
        version: inspected.manifest.version,
        entry: inspected.entry,
        manifest: inspected.manifest,
        manifestHash: inspected.manifestHash,
        integrity: inspected.integrity,
        installedAt: new Date(options.clock.now()).toISOString(),
      });
      await inspected.discard();
      // A running older version keeps serving its in-flight calls; new calls go to the new one.
      for (const s of supervisors.values()) if (s.source.manifest.id === inspected.manifest.id && s.source.dir === dir) await s.stop();
      await load();
      const installed = sources.find((s) => s.kind === 'installed' && s.dir === dir);
      if (!installed) throw new KernelError('invalid_plugin', 'The plugin was installed but could not be read back.');
      return installed;
    },
    async verify(id, version) {
      assertPluginId(id);
      const source = sources.find((s) => s.manifest.id === id && s.manifest.version === version);
      if (!source) throw new KernelError('not_found', `Plugin ${id} ${version} is not installed.`, { status: 404 });
      if (source.kind === 'builtin') {
        // A built-in is checked against its build-time pin; unreadable files (a link, too big) are not intact.
        const now = await readPinnedSet(source.dir).catch((error: Error) => error);
        return {
          kind: source.kind,
          integrity: now instanceof Error ? null : now.integrity,
          recorded: source.integrity,
          manifestHash: source.manifestHash,
          entry: source.entry,
          packageEntry: null,
          problem: now instanceof Error ? now.message : null,
        };
      }
      // What is on disk now, the install record included: the caller holds all of it against the database's approval.
      return { kind: source.kind, recorded: source.integrity, ...(await installedOnDisk(source.dir)) };
    },
    async remove(id) {
      assertPluginId(id);
      for (const [key, s] of supervisors) {
        if (s.source.manifest.id === id && s.source.kind === 'installed') {
          await s.stop();
          supervisors.delete(key);
        }
      }
      await removeInstalled(options.dataDir, id);
      await load();
    },
    reload: load,
    async stopDatabase(database) {
      const serving = [...supervisors.entries()].filter(([, s]) => partitions.get(s)?.database === database);
      for (const [key] of serving) supervisors.delete(key);
      const stopped = Promise.all(serving.map(([, s]) => s.stop())).then(() => undefined);
      // stopAll (the gateway stopping) waits for these too.
      stopping.add(stopped);
      await stopped.finally(() => stopping.delete(stopped));
    },
    async stopAll() {
      await Promise.all([...[...supervisors.values()].map((s) => s.stop()), ...stopping]);
    },
  };
  return host;
}
