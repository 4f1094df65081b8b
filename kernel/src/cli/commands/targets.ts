import { readFile } from 'node:fs/promises';
import { parse, parseJsonOption, requireOption, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { line, preview, printJson, printTable, say } from '../output.js';
import { asOperator } from '../operator.js';

export const TARGET_USAGE = `aip target kinds [--json]         the installed connector kinds, each with its credential kinds and their fields
aip target add --kind KIND --name NAME [--config JSON] [--description TEXT]
aip target list [--json]
aip target check TARGET_ID --profile PROFILE_ID   try the connection; exit 1 with the typed problem if it fails
aip target remove TARGET_ID
options: [--db NAME] [--password-stdin] [--url URL]`;

export const PROFILE_USAGE = `aip profile add --target TARGET_ID --label LABEL [--credential-kind KIND] [--config JSON] [--secret-file FILE.json]
aip profile list [--target TARGET_ID] [--json]
aip profile remove PROFILE_ID
Secrets come from a JSON file (--secret-file), never the command line; other fields go in --config.
KIND is one of the target connector's credential kinds; without it, its first. Redis has:
  password   --secret-file with {"password": "..."}; an ACL user as --config '{"username": "..."}'
  none       a Redis without a password: no --secret-file
Every installed connector's kinds and fields: aip target kinds`;

interface ConnectorView {
  id: string;
  version: string;
  title: string;
  description?: string;
  credentialKinds: Array<{ kind: string; fields: string[]; secret: string[]; required: string[] }>;
  actions: Array<{ name: string; risk: string }>;
}

/** `password  username, password [secret, required]` per kind: what aip profile add takes. */
function kindLines(connector: ConnectorView): string[] {
  if (connector.credentialKinds.length === 0) return ['    (any fields: this connector declares no credential kinds)'];
  const width = Math.max(...connector.credentialKinds.map((k) => k.kind.length));
  return connector.credentialKinds.map(({ kind, fields, secret, required }, i) => {
    const shown = fields.map((field) => {
      const marks = [secret.includes(field) ? 'secret' : '', required.includes(field) ? 'required' : ''].filter(Boolean);
      return marks.length ? `${field} [${marks.join(', ')}]` : field;
    });
    return line`    ${kind.padEnd(width)}  ${shown.length ? shown.join(', ') : 'no fields'}` + (i === 0 ? '   (the default)' : '');
  });
}

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
    case 'kinds': {
      const op = await asOperator(values);
      const { connectors } = await op.client.call<{ connectors: ConnectorView[] }>('GET', op.path('/connectors'));
      if (values.json) {
        printJson(connectors.map(({ id, version, title, credentialKinds }) => ({ id, version, title, credentialKinds })));
        return EXIT.ok;
      }
      if (connectors.length === 0) say('No connectors are installed. Install one with: aip plugin install SOURCE');
      for (const connector of [...connectors].sort((a, b) => a.id.localeCompare(b.id))) {
        say(line`${connector.id}  ${connector.title} ${connector.version}`);
        say('  credential kinds (aip profile add --credential-kind KIND; secret fields go in --secret-file):');
        say(kindLines(connector).join('\n'));
      }
      return EXIT.ok;
    }
    case 'check': {
      const id = requirePositional(positionals, 0, 'the target id', TARGET_USAGE);
      const profileId = requireOption(values.profile, 'profile', TARGET_USAGE);
      const op = await asOperator(values);
      const { result } = await op.client.call<{ result: { ok: boolean; problem?: string; message?: string } }>('POST', op.path(`/targets/${encodeURIComponent(id)}/check`), { profileId });
      if (values.json) printJson(result);
      // The message is the connector's own words: escaped.
      else say(result.ok ? line`OK: ${result.message ?? 'connected'}` : line`FAILED (${result.problem ?? 'unknown'}): ${result.message ?? ''}`);
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
      else say(line`Added target ${target.id} (${target.kind} "${target.name}"). Add a credential profile with: aip profile add --target ${target.id} --label default   (its credential kinds: aip target kinds)`);
      return EXIT.ok;
    }
    case 'list': {
      const op = await asOperator(values);
      const { targets } = await op.client.call<{ targets: TargetView[] }>('GET', op.path('/targets'));
      if (values.json) printJson(targets);
      else
        printTable(
          targets.map((t) => ({ ...t, config: preview(t.config, Infinity), profiles: t.profiles.map((p) => `${p.id} (${p.label})`).join(', ') })),
          [['id', 'ID'], ['kind', 'KIND'], ['name', 'NAME'], ['config', 'CONFIG'], ['profiles', 'PROFILES']],
          'No targets yet. Add one with: aip target add --kind redis --name cache --config \'{"host":"127.0.0.1","port":6379}\'',
        );
      return EXIT.ok;
    }
    case 'remove': {
      const id = requirePositional(positionals, 0, 'the target id', TARGET_USAGE);
      const op = await asOperator(values);
      await op.client.call('DELETE', op.path(`/targets/${encodeURIComponent(id)}`));
      say(line`Removed target ${id} with its profiles and grants; its pending approvals are now stale.`);
      return EXIT.ok;
    }
    default:
      throw new CliError(line`Unknown target command "${sub ?? ''}".` + `\n\n${TARGET_USAGE}`, EXIT.usage);
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
      const { profile } = await op.client
        .call<{ profile: { id: string; label: string; credentialKind: string; secretFields: string[] } }>('POST', op.path(`/targets/${encodeURIComponent(target)}/profiles`), body)
        .catch((error: unknown) => {
          // The gateway's message lists the connector's kinds; say where the whole table is.
          if (error instanceof CliError && error.code === 'invalid_credential') throw new CliError(`${error.message}\nEvery connector's credential kinds and fields: aip target kinds`, error.exitCode, error.code);
          throw error;
        });
      if (values.json) printJson(profile);
      else say(line`Added profile ${profile.id} ("${profile.label}", credential kind ${profile.credentialKind}; secret fields: ${profile.secretFields.join(', ') || 'none'}).`);
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
      say(line`Removed profile ${id}.`);
      return EXIT.ok;
    }
    default:
      throw new CliError(`Unknown profile command "${sub ?? ''}".\n\n${PROFILE_USAGE}`, EXIT.usage);
  }
}
