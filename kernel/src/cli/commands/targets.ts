import { readFile } from 'node:fs/promises';
import { parse, parseJsonOption, requireOption, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { printJson, printTable, say } from '../output.js';
import { asOperator } from '../operator.js';

export const TARGET_USAGE = `aip target add --kind KIND --name NAME [--config JSON] [--description TEXT]
aip target list [--json]
aip target check TARGET_ID --profile PROFILE_ID   try the connection; exit 1 with the typed problem if it fails
aip target remove TARGET_ID
options: [--db NAME] [--password-stdin] [--url URL]`;

export const PROFILE_USAGE = `aip profile add --target TARGET_ID --label LABEL [--credential-kind KIND] [--config JSON] [--secret-file FILE.json]
aip profile list [--target TARGET_ID] [--json]
aip profile remove PROFILE_ID
Secrets come from a JSON file (--secret-file), never the command line.`;

interface TargetView {
  id: string;
  kind: string;
  name: string;
  description: string;
  config: Record<string, unknown>;
  profiles: Array<{ id: string; label: string; credentialKind: string; secretFields: string[] }>;
}

export async function targetCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    { kind: { type: 'string' }, name: { type: 'string' }, config: { type: 'string' }, description: { type: 'string' }, profile: { type: 'string' } },
    TARGET_USAGE,
  );
  switch (sub) {
    case 'check': {
      const id = requirePositional(positionals, 0, 'the target id', TARGET_USAGE);
      const profileId = requireOption(values.profile, 'profile', TARGET_USAGE);
      const op = await asOperator(values);
      const { result } = await op.client.call<{ result: { ok: boolean; problem?: string; message?: string } }>('POST', op.path(`/targets/${encodeURIComponent(id)}/check`), { profileId });
      if (values.json) printJson(result);
      else say(result.ok ? `OK: ${result.message ?? 'connected'}` : `FAILED (${result.problem ?? 'unknown'}): ${result.message ?? ''}`);
      return result.ok ? EXIT.ok : EXIT.error;
    }
    case 'add': {
      const body = {
        kind: requireOption(values.kind, 'kind', TARGET_USAGE),
        name: requireOption(values.name, 'name', TARGET_USAGE),
        ...(values.description ? { description: values.description } : {}),
        ...(values.config ? { config: parseJsonOption(values.config, 'config') } : {}),
      };
      const op = await asOperator(values);
      const { target } = await op.client.call<{ target: TargetView }>('POST', op.path('/targets'), body);
      if (values.json) printJson(target);
      else say(`Added target ${target.id} (${target.kind} "${target.name}"). Add a credential profile with: aip profile add --target ${target.id} --label default`);
      return EXIT.ok;
    }
    case 'list': {
      const op = await asOperator(values);
      const { targets } = await op.client.call<{ targets: TargetView[] }>('GET', op.path('/targets'));
      if (values.json) printJson(targets);
      else
        printTable(
          targets.map((t) => ({ ...t, config: JSON.stringify(t.config), profiles: t.profiles.map((p) => `${p.id} (${p.label})`).join(', ') })),
          [['id', 'ID'], ['kind', 'KIND'], ['name', 'NAME'], ['config', 'CONFIG'], ['profiles', 'PROFILES']],
          'No targets yet. Add one with: aip target add --kind redis --name cache --config \'{"host":"127.0.0.1","port":6379}\'',
        );
      return EXIT.ok;
    }
    case 'remove': {
      const id = requirePositional(positionals, 0, 'the target id', TARGET_USAGE);
      const op = await asOperator(values);
      await op.client.call('DELETE', op.path(`/targets/${encodeURIComponent(id)}`));
      say(`Removed target ${id} with its profiles and grants; its pending approvals are now stale.`);
      return EXIT.ok;
    }
    default:
      throw new CliError(`Unknown target command "${sub ?? ''}".\n\n${TARGET_USAGE}`, EXIT.usage);
  }
}

export async function profileCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    { target: { type: 'string' }, label: { type: 'string' }, 'credential-kind': { type: 'string' }, config: { type: 'string' }, 'secret-file': { type: 'string' } },
    PROFILE_USAGE,
  );
  switch (sub) {
    case 'add': {
      const target = requireOption(values.target, 'target', PROFILE_USAGE);
      let secret: Record<string, unknown> | undefined;
      if (values['secret-file']) {
        try {
          secret = parseJsonOption(await readFile(values['secret-file'], 'utf8'), 'secret-file');
        } catch (error) {
          if (error instanceof CliError) throw error;
          throw new CliError(`Cannot read --secret-file ${values['secret-file']}: ${(error as Error).message}`, EXIT.usage);
        }
      }
      const body = {
        label: requireOption(values.label, 'label', PROFILE_USAGE),
        ...(values['credential-kind'] ? { credentialKind: values['credential-kind'] } : {}),
        ...(values.config ? { config: parseJsonOption(values.config, 'config') } : {}),
        ...(secret ? { secret } : {}),
      };
      const op = await asOperator(values);
      const { profile } = await op.client.call<{ profile: { id: string; label: string; secretFields: string[] } }>('POST', op.path(`/targets/${encodeURIComponent(target)}/profiles`), body);
      if (values.json) printJson(profile);
      else say(`Added profile ${profile.id} ("${profile.label}"; secret fields: ${profile.secretFields.join(', ') || 'none'}).`);
      return EXIT.ok;
    }
    case 'list': {
      const op = await asOperator(values);
      const { targets } = await op.client.call<{ targets: TargetView[] }>('GET', op.path('/targets'));
      const profiles = targets
        .filter((t) => !values.target || t.id === values.target)
        .flatMap((t) => t.profiles.map((p) => ({ ...p, target: `${t.id} (${t.name})`, targetRef: `${t.kind}:${t.id}:${p.id}`, secretFields: p.secretFields.join(', ') })));
      if (values.json) printJson(profiles);
      else printTable(profiles, [['id', 'ID'], ['label', 'LABEL'], ['target', 'TARGET'], ['secretFields', 'SECRET FIELDS'], ['targetRef', 'TARGET_REF']], 'No credential profiles yet.');
      return EXIT.ok;
    }
    case 'remove': {
      const id = requirePositional(positionals, 0, 'the profile id', PROFILE_USAGE);
      const op = await asOperator(values);
      await op.client.call('DELETE', op.path(`/profiles/${encodeURIComponent(id)}`));
      say(`Removed profile ${id}.`);
      return EXIT.ok;
    }
    default:
      throw new CliError(`Unknown profile command "${sub ?? ''}".\n\n${PROFILE_USAGE}`, EXIT.usage);
  }
}
