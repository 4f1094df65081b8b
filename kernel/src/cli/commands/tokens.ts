import { parse, requireOption, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { line, printJson, printTable, say } from '../output.js';
import { asOperator } from '../operator.js';

export const TOKEN_USAGE = `aip token create --name NAME [--expires 30d]   prints the token alone on the last line
aip token list [--json]
aip token revoke TOKEN_ID
options: [--db NAME] [--password-stdin] [--url URL]`;

export const GRANT_USAGE = `aip grant set --token TOKEN_ID --target TARGET_ID --profile PROFILE_ID --action ACTION|* --rule always_run|approval_required|blocked [--expires 4h]
aip grant list [--token TOKEN_ID] [--target TARGET_ID] [--json]
aip grant remove GRANT_ID`;

const DURATION = /^\d{1,6}\s*[smhdw]$/;

function expiresIn(value: string | undefined, usage: string): { expiresIn?: string } {
  if (value === undefined) return {};
  if (!DURATION.test(value)) throw new CliError(`--expires takes a duration such as 30m, 4h, 1d or 2w, not "${value}".\n\nUsage: ${usage}`, EXIT.usage);
  return { expiresIn: value };
}

export async function tokenCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { name: { type: 'string' }, expires: { type: 'string' } }, TOKEN_USAGE);
  switch (sub) {
    case 'create': {
      const body = { name: requireOption(values.name, 'name', TOKEN_USAGE), ...expiresIn(values.expires, TOKEN_USAGE) };
      const op = await asOperator(values);
      const created = await op.client.call<{ token: { id: string; name: string; expiresAt: string | null }; secret: string }>('POST', op.path('/tokens'), body);
      if (values.json) {
        printJson(created);
        return EXIT.ok;
      }
      say(line`Created token ${created.token.id} "${created.token.name}" (expires: ${created.token.expiresAt ?? 'never'}).`);
      say('Copy it now: only its hash is stored, it cannot be shown again. Grant it access with: aip grant set ...');
      say(created.secret);
      return EXIT.ok;
    }
    case 'list': {
      const op = await asOperator(values);
      const { tokens } = await op.client.call<{ tokens: Array<Record<string, unknown>> }>('GET', op.path('/tokens'));
      if (values.json) printJson(tokens);
      else printTable(tokens, [['id', 'ID'], ['name', 'NAME'], ['prefix', 'PREFIX'], ['state', 'STATE'], ['expiresAt', 'EXPIRES'], ['lastUsedAt', 'LAST USED']], 'No tokens yet. Create one with: aip token create --name my-agent');
      return EXIT.ok;
    }
    case 'revoke': {
      const id = requirePositional(positionals, 0, 'the token id', TOKEN_USAGE);
      const op = await asOperator(values);
      await op.client.call('POST', op.path(`/tokens/${encodeURIComponent(id)}/revoke`));
      say(line`Revoked token ${id}; its pending approvals are now stale.`);
      return EXIT.ok;
    }
    default:
      throw new CliError(`Unknown token command "${sub ?? ''}".\n\n${TOKEN_USAGE}`, EXIT.usage);
  }
}

export async function grantCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    { token: { type: 'string' }, target: { type: 'string' }, profile: { type: 'string' }, action: { type: 'string' }, rule: { type: 'string' }, expires: { type: 'string' } },
    GRANT_USAGE,
  );
  switch (sub) {
    case 'set': {
      const body = {
        tokenId: requireOption(values.token, 'token', GRANT_USAGE),
        targetId: requireOption(values.target, 'target', GRANT_USAGE),
        profileId: requireOption(values.profile, 'profile', GRANT_USAGE),
        action: requireOption(values.action, 'action', GRANT_USAGE),
        rule: requireOption(values.rule, 'rule', GRANT_USAGE),
        ...expiresIn(values.expires, GRANT_USAGE),
      };
      const op = await asOperator(values);
      const result = await op.client.call<{
        grant: { id: string; action: string; rule: string; expiresAt: string | null };
        effectiveRule: string;
        overriddenBy: { id: string; action: string; rule: string } | null;
        overrides: Array<{ id: string; action: string; rule: string }>;
      }>('PUT', op.path('/grants'), body);
      const { grant } = result;
      if (values.json) printJson(grant);
      else say(line`Grant ${grant.id}: ${grant.action} -> ${grant.rule}` + (grant.expiresAt ? line` until ${grant.expiresAt}` : '') + '.');
      // Stricter wins (deny wins): a rule that another row overrides does nothing until that row changes. Say so rather than let it look set.
      if (result.overriddenBy) {
        const by = result.overriddenBy;
        process.stderr.write(
          line`warning: ${grant.action} is still ${result.effectiveRule}: the stricter row ${by.id} (action ${by.action} -> ${by.rule}) applies too, and the stricter rule wins. ` +
            line`To loosen it, change that row (aip grant set ... --action ${by.action}) or remove it (aip grant remove ${by.id}).\n`,
        );
      }
      for (const other of result.overrides) {
        process.stderr.write(line`note: ${other.action} (row ${other.id}, ${other.rule}) is now ${result.effectiveRule}: this stricter row overrides it.\n`);
      }
      return EXIT.ok;
    }
    case 'list': {
      const op = await asOperator(values);
      const query = new URLSearchParams({ ...(values.token ? { tokenId: values.token } : {}), ...(values.target ? { targetId: values.target } : {}) });
      const { grants } = await op.client.call<{ grants: Array<Record<string, unknown>> }>('GET', op.path(`/grants${query.size ? `?${query}` : ''}`));
      if (values.json) printJson(grants);
      else
        printTable(
          grants.map((g) => {
            const by = g.overriddenBy as { id: string; action: string } | null;
            // EFFECTIVE is what the row's action gets now; a row a stricter one overrides names it.
            return { ...g, state: g.expired ? 'expired' : 'active', effective: `${String(g.effectiveRule ?? g.rule)}${by ? ` (by ${by.action} row ${by.id})` : ''}` };
          }),
          [['id', 'ID'], ['tokenId', 'TOKEN'], ['targetId', 'TARGET'], ['profileId', 'PROFILE'], ['action', 'ACTION'], ['rule', 'RULE'], ['effective', 'EFFECTIVE'], ['expiresAt', 'EXPIRES'], ['state', 'STATE']],
          'No grants: every call is refused until you add one with aip grant set.',
        );
      return EXIT.ok;
    }
    case 'remove': {
      const id = requirePositional(positionals, 0, 'the grant id', GRANT_USAGE);
      const op = await asOperator(values);
      await op.client.call('DELETE', op.path(`/grants/${encodeURIComponent(id)}`));
      say(line`Removed grant ${id}.`);
      return EXIT.ok;
    }
    default:
      throw new CliError(`Unknown grant command "${sub ?? ''}".\n\n${GRANT_USAGE}`, EXIT.usage);
  }
}
