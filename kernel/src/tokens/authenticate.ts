import type { Clock } from '../lib/clock.js';
import { KernelError } from '../lib/errors.js';
import { agentPrincipal, type AgentPrincipal } from '../lib/principal.js';
import { createFailureLimiter } from '../lib/rate-limit.js';
import { hashToken, tokenProblem, tokenRefusal, tokenState, TOKEN_PATTERN, type TokenRecord, type TokenStore } from './tokens.js';

/** Ten failed token authentications a minute: a real client never fails like that, a guesser is slowed to uselessness. */
const TOKEN_FAILURES = { maxFailures: 10, windowMs: 60_000 };

export interface TokenAuthenticator {
  /**
   * The edge's one authentication of a bearer token, across every unlocked
   * database: the principal it belongs to, or a refusal (401/409/429).
   */
  authenticate(rawToken: unknown): AgentPrincipal;
  /**
   * Whether the principal's token still works now (a session outlives a
   * revoke or an expiry): the token record, or the same refusal a fresh
   * authentication would give.
   */
  current(principal: AgentPrincipal): TokenRecord;
}

/** The token stores of the unlocked databases, by name. */
export type UnlockedTokenStores = () => Iterable<{ database: string; tokens: Pick<TokenStore, 'findByHash' | 'get'> }>;

export function createTokenAuthenticator(deps: { clock: Clock; unlocked: UnlockedTokenStores; storeOf: (database: string) => Pick<TokenStore, 'get'> | undefined }): TokenAuthenticator {
  const { clock } = deps;
  const failures = createFailureLimiter({ ...TOKEN_FAILURES, clock });

  const tooMany = (retryMs: number) =>
    new KernelError('too_many_attempts', `Too many failed token authentications. Try again in ${Math.ceil(retryMs / 1000)} s.`, {
      status: 429,
      details: { retryAfterSeconds: Math.ceil(retryMs / 1000) },
    });

  // Failures are limited per kind of failure, never globally: a client
  // hammering with a bad or revoked token must not lock out the agents whose
  // tokens are valid (a valid token is a 256-bit secret, so the limit guards
  // the audit log and the CPU, not against guessing).
  const refuse = (key: string, error: KernelError): never => {
    const wait = failures.retryAfterMs(key);
    if (wait > 0) throw tooMany(wait);
    failures.recordFailure(key);
    throw error;
  };

  return {
    authenticate(rawToken) {
      if (typeof rawToken !== 'string' || !TOKEN_PATTERN.test(rawToken)) {
        const problem = typeof rawToken === 'string' ? tokenProblem(rawToken) : undefined;
        refuse('unknown', new KernelError('invalid_token', `The MCP token is ${problem ? `malformed: ${problem}` : 'missing'}. Ask your operator for a token.`, { status: 401 }));
      }
      const hash = hashToken(rawToken as string);
      const now = clock.now();
      const matches: Array<{ database: string; token: TokenRecord }> = [];
      let unlockedCount = 0;
      for (const { database, tokens } of deps.unlocked()) {
        unlockedCount += 1;
        const token = tokens.findByHash(hash);
        if (token) matches.push({ database, token });
      }
      // Nothing is unlocked (a gateway just started): no token can be checked, so
      // none is refused as wrong, and none counts as a failed attempt.
      if (unlockedCount === 0) {
        throw new KernelError('gateway_locked', 'The gateway is locked: the operator has not unlocked a database since it started, so no token can be checked yet. Ask your operator to unlock it (aip unlock).', {
          status: 503,
          details: { retryAfterSeconds: 30 },
        });
      }
      // Only copies that still work count: revoking or expiring all but one resolves a conflict.
      const active = matches.filter((m) => tokenState(m.token, now) === 'active');
      if (active.length > 1) {
        // Never a guess about which database was meant.
        throw new KernelError(
          'token_conflict',
          `This token is valid in more than one unlocked database (${active.map((m) => m.database).join(', ')}), so it cannot be used. Ask your operator to revoke it in all but one, or to lock the others.`,
          { status: 409 },
        );
      }
      if (active[0]) return agentPrincipal(active[0].database, active[0].token.id);
      const known = matches[0];
      if (!known) {
        return refuse('unknown', new KernelError('invalid_token', 'The MCP token is not valid (unknown, or its database is locked). Ask your operator.', { status: 401 }));
      }
      return refuse(`token:${known.token.id}`, tokenRefusal(tokenState(known.token, now) as 'expired' | 'revoked'));
    },
    current(principal) {
      const token = deps.storeOf(principal.database)?.get(principal.tokenId);
      if (!token) throw new KernelError('invalid_token', 'The MCP token is not valid (unknown, or its database is locked). Ask your operator.', { status: 401 });
      const state = tokenState(token, clock.now());
      if (state !== 'active') throw tokenRefusal(state);
      return token;
    },
  };
}
