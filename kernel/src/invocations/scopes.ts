import type { CredentialLease } from '@aipermission/plugin-sdk/protocol';
import type { OpenedCredential } from '../credentials/index.js';

/** Something the kernel opened for one invocation (an endpoint, later an SSH signer) and closes when it ends. */
export interface ScopedResource {
  close(): void | Promise<void>;
}

/**
 * Everything one plugin invocation may get, owned in one place
 * (ARCHITECTURE.md, "invocation scope"): the declared credential fields of
 * its one profile, the endpoints the kernel opened for it, and (with the SSH
 * issue) the signer and host-key check. Disposed when the invocation ends;
 * after that it hands out nothing.
 */
export interface InvocationScope {
  readonly invocationId: string;
  /** The connector whose process may name this invocation. */
  readonly connectorId: string;
  /** The database whose profile this is: with the profile, what decides which plugin process may serve it. */
  readonly database: string;
  readonly targetId: string;
  readonly profileId: string;
  /** The credential kind of the profile (which of the connector's credential schemas applies). */
  readonly credentialKind: string;
  /** False once disposed. */
  readonly live: boolean;
  /** The credential lease: the declared fields of the one profile (see OpenedCredential.lease). */
  lease(declared?: readonly string[]): CredentialLease;
  /** The lease's secret values, for redaction of everything that comes back (empty once disposed: take them before). */
  secretValues(): string[];
  /** Ties a resource to this invocation: it is closed at dispose (at once if the scope has ended). */
  own<T extends ScopedResource>(resource: T): T;
  dispose(): Promise<void>;
}

export interface InvocationScopes {
  /** Opens the scope of one invocation and registers it by id (an id in use is refused). */
  open(args: { invocationId: string; connectorId: string; database: string; targetId: string; profileId: string; credential: OpenedCredential }): InvocationScope;
  /**
   * The scope a plugin's message names, or undefined: unknown, disposed, or
   * belonging to another connector's invocation all read the same.
   */
  resolve(invocationId: unknown, connectorId: string): InvocationScope | undefined;
  /** How many scopes are live (for tests and status). */
  readonly size: number;
}

export function createInvocationScopes(deps: { log?: (message: string, error?: unknown) => void } = {}): InvocationScopes {
  const live = new Map<string, InvocationScope>();
  const log = deps.log ?? (() => undefined);

  return {
    open({ invocationId, connectorId, database, targetId, profileId, credential }) {
      if (live.has(invocationId)) throw new Error(`invocation ${invocationId} already has a scope`);
      const resources: ScopedResource[] = [];
      let disposed = false;
      let disposing: Promise<void> | undefined;
      const closeOne = async (resource: ScopedResource) => {
        try {
          await resource.close();
        } catch (error) {
          log(`could not close a resource of invocation ${invocationId}`, error);
        }
      };
      const scope: InvocationScope = {
        invocationId,
        connectorId,
        database,
        targetId,
        profileId,
        credentialKind: credential.kind,
        get live() {
          return !disposed;
        },
        lease(declared) {
          if (disposed) throw new Error(`invocation ${invocationId} has ended; its credential is gone`);
          return credential.lease(declared);
        },
        secretValues: () => credential.secretValues(),
        own(resource) {
          if (disposed) void closeOne(resource);
          else resources.push(resource);
          return resource;
        },
        dispose() {
          disposing ??= (async () => {
            disposed = true;
            if (live.get(invocationId) === scope) live.delete(invocationId);
            await Promise.all(resources.splice(0).map(closeOne));
            credential.wipe();
          })();
          return disposing;
        },
      };
      live.set(invocationId, scope);
      return scope;
    },
    resolve(invocationId, connectorId) {
      if (typeof invocationId !== 'string') return undefined;
      const scope = live.get(invocationId);
      return scope && scope.live && scope.connectorId === connectorId ? scope : undefined;
    },
    get size() {
      return live.size;
    },
  };
}
