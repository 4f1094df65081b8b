/**
 * Who is acting, as the edge that authenticated them established it
 * (ARCHITECTURE.md, "Two shapes carry every call"). A principal is made once,
 * at the MCP edge from a bearer token or at the HTTP edge from an operator
 * session; nothing below the edge ever sees a token string or a password.
 *
 * Principals are frozen objects made only by the functions here, and every
 * module that takes one checks the shape at run time too (`assertPrincipal`):
 * a raw token string handed down by mistake is refused loudly, never looked up.
 */
import { KernelError } from './errors.js';

const MADE = new WeakSet<object>();

export interface AgentPrincipal {
  readonly kind: 'agent';
  readonly database: string;
  readonly tokenId: string;
}

export interface OperatorPrincipal {
  readonly kind: 'operator';
  readonly database: string;
  readonly sessionId: string;
  /** The audit actor of this session (`operator:<client>:<session id>`, or `local:no-session` for a stop). */
  readonly actor: string;
}

export type Principal = AgentPrincipal | OperatorPrincipal;

export function agentPrincipal(database: string, tokenId: string): AgentPrincipal {
  const principal: AgentPrincipal = Object.freeze({ kind: 'agent', database, tokenId });
  MADE.add(principal);
  return principal;
}

export function operatorPrincipal(database: string, sessionId: string, actor: string): OperatorPrincipal {
  const principal: OperatorPrincipal = Object.freeze({ kind: 'operator', database, sessionId, actor });
  MADE.add(principal);
  return principal;
}

/** The audit actor of a principal. */
export function actorOf(principal: Principal): string {
  return principal.kind === 'agent' ? `token:${principal.tokenId}` : principal.actor;
}

/**
 * Refuses anything that is not a principal made by this module: a defect in
 * the kernel (a token string passed where a principal belongs), reported as
 * such and never treated as a credential.
 */
export function assertPrincipal<K extends Principal['kind']>(value: unknown, kind?: K): asserts value is Extract<Principal, { kind: K }> {
  if (typeof value !== 'object' || value === null || !MADE.has(value)) {
    throw new KernelError('internal_error', 'The kernel was handed something other than an authenticated principal; nothing was run.', { status: 500 });
  }
  if (kind && (value as Principal).kind !== kind) {
    throw new KernelError('internal_error', `This needs an ${kind} principal; nothing was run.`, { status: 500 });
  }
}
