import { readFile } from 'node:fs/promises';
import { parse, requireOption, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { line, printJson, printTable, say } from '../output.js';
import { asOperator } from '../operator.js';
import { passwordSource } from '../prompt.js';

export const SSH_USAGE = `aip ssh key generate --name NAME [--type ed25519|rsa]   ed25519 by default; rsa is 4096 bits
aip ssh key import --name NAME FILE                      an OpenSSH private key (ed25519, RSA >= 2048, ECDSA);
                                                         an encrypted one asks for its passphrase (used once, never stored)
aip ssh key list [--json]
aip ssh key show NAME|ID                                 public key, SHA-256 fingerprint, install command
aip ssh key remove NAME|ID
aip ssh hostkey scan HOST[:PORT]                         reads the key the host offers; an unknown one becomes an approval
aip ssh hostkey list [--status pending|approved|rejected] [--json]
aip ssh hostkey approve APPROVAL_ID [--replace]          --replace is required when another key is pinned for that host:port
aip ssh hostkey reject APPROVAL_ID
options: [--db NAME] [--password-stdin] [--url URL]
With --password-stdin, line 1 is the database password and line 2 the key's passphrase (import of an encrypted key).
No command prints private key material.`;

interface KeyInfo {
  id: string;
  name: string;
  keyType: string;
  publicKey: string;
  fingerprint: string;
  installCommand: string;
  origin: string;
  createdAt: string;
}

function printKey(key: KeyInfo): void {
  say(line`SSH key ${key.name} (${key.id}, ${key.keyType}, ${key.origin})`);
  say(line`fingerprint: ${key.fingerprint}`);
  say('public key:');
  say(key.publicKey);
  say('install it for the remote user (run there; idempotent, sets 700/600):');
  say(key.installCommand);
}

export async function sshCommand(argv: string[]): Promise<number> {
  const [group, sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { name: { type: 'string' }, type: { type: 'string' }, status: { type: 'string' }, replace: { type: 'boolean' } }, SSH_USAGE);
  if (group === 'key') {
    switch (sub) {
      case 'generate': {
        const name = requireOption(values.name, 'name', SSH_USAGE);
        const type = values.type ?? 'ed25519';
        if (type !== 'ed25519' && type !== 'rsa') throw new CliError(`--type is ed25519 or rsa, not "${type}".\n\n${SSH_USAGE}`, EXIT.usage);
        const op = await asOperator(values);
        const { key } = await op.client.call<{ key: KeyInfo }>('POST', op.path('/ssh/keys'), { name, type });
        if (values.json) printJson(key);
        else printKey(key);
        return EXIT.ok;
      }
      case 'import': {
        const name = requireOption(values.name, 'name', SSH_USAGE);
        const file = requirePositional(positionals, 0, 'the private key file', SSH_USAGE);
        let privateKey: string;
        try {
          privateKey = await readFile(file, 'utf8');
        } catch (error) {
          throw new CliError(`Could not read ${file}: ${(error as Error).message}`, EXIT.error);
        }
        const op = await asOperator(values);
        const send = (passphrase?: string) => op.client.call<{ key: KeyInfo }>('POST', op.path('/ssh/keys/import'), { name, privateKey, ...(passphrase !== undefined ? { passphrase } : {}) });
        let result: { key: KeyInfo };
        try {
          result = await send();
        } catch (error) {
          if (!(error instanceof CliError) || error.code !== 'ssh_key_passphrase_required') throw error;
          const source = passwordSource(values['password-stdin']);
          // Standard input is read as one list of lines by every source: line 1 was the database password.
          if (values['password-stdin']) await source.read('database password');
          const passphrase = await source.read(`Passphrase of ${file}: `);
          result = await send(passphrase);
        }
        if (values.json) printJson(result.key);
        else printKey(result.key);
        return EXIT.ok;
      }
      case 'list': {
        const op = await asOperator(values);
        const { keys } = await op.client.call<{ keys: KeyInfo[] }>('GET', op.path('/ssh/keys'));
        if (values.json) printJson(keys);
        else printTable(keys as unknown as Array<Record<string, unknown>>, [['name', 'NAME'], ['id', 'ID'], ['keyType', 'TYPE'], ['fingerprint', 'FINGERPRINT'], ['origin', 'ORIGIN'], ['createdAt', 'CREATED']], 'No SSH keys yet. Generate one with: aip ssh key generate --name deploy');
        return EXIT.ok;
      }
      case 'show': {
        const ref = requirePositional(positionals, 0, 'the key name or id', SSH_USAGE);
        const op = await asOperator(values);
        const { key } = await op.client.call<{ key: KeyInfo }>('GET', op.path(`/ssh/keys/${encodeURIComponent(ref)}`));
        if (values.json) printJson(key);
        else printKey(key);
        return EXIT.ok;
      }
      case 'remove': {
        const ref = requirePositional(positionals, 0, 'the key name or id', SSH_USAGE);
        const op = await asOperator(values);
        await op.client.call('DELETE', op.path(`/ssh/keys/${encodeURIComponent(ref)}`));
        say(line`Removed SSH key ${ref}. Profiles that used it can no longer sign in; remove its line from the hosts' authorized_keys too.`);
        return EXIT.ok;
      }
      default:
        throw new CliError(`Unknown ssh key command "${sub ?? ''}".\n\n${SSH_USAGE}`, EXIT.usage);
    }
  }
  if (group === 'hostkey') {
    switch (sub) {
      case 'list': {
        const op = await asOperator(values);
        const query = values.status ? `?status=${encodeURIComponent(values.status)}` : '';
        const result = await op.client.call<{ pinned: Array<Record<string, unknown>>; approvals: Array<Record<string, unknown>> }>('GET', op.path(`/ssh/hostkeys${query}`));
        if (values.json) {
          printJson(result);
          return EXIT.ok;
        }
        say('Pinned host keys:');
        printTable(result.pinned, [['host', 'HOST'], ['port', 'PORT'], ['keyType', 'TYPE'], ['fingerprint', 'FINGERPRINT'], ['pinnedAt', 'PINNED'], ['pinnedBy', 'BY']], '  none');
        say('');
        say('Host-key approvals:');
        printTable(result.approvals, [['id', 'ID'], ['status', 'STATUS'], ['reason', 'REASON'], ['host', 'HOST'], ['port', 'PORT'], ['keyType', 'TYPE'], ['fingerprint', 'FINGERPRINT'], ['pinnedFingerprint', 'PINNED NOW']], '  none');
        return EXIT.ok;
      }
      case 'scan': {
        const where = requirePositional(positionals, 0, 'HOST[:PORT]', SSH_USAGE);
        const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(where);
        if (!match) throw new CliError(`"${where}" is not HOST or HOST:PORT.\n\n${SSH_USAGE}`, EXIT.usage);
        const host = match[1]!.replace(/^\[|\]$/g, '');
        const port = match[2] ? Number(match[2]) : 22;
        const op = await asOperator(values);
        const { verdict } = await op.client.call<{ verdict: { trusted: boolean; status?: string; approvalId?: string; message?: string } }>('POST', op.path('/ssh/hostkeys/scan'), { host, port });
        if (values.json) printJson(verdict);
        else if (verdict.trusted) say(line`The key ${host}:${port} offers is the pinned one.`);
        else say(verdict.message ?? '');
        return verdict.trusted ? EXIT.ok : EXIT.error;
      }
      case 'approve': {
        const id = requirePositional(positionals, 0, 'the approval id', SSH_USAGE);
        const op = await asOperator(values);
        const { approval } = await op.client.call<{ approval: { host: string; port: number; keyType: string; fingerprint: string } }>('POST', op.path(`/ssh/hostkeys/${encodeURIComponent(id)}/approve`), { replace: values.replace === true });
        say(line`Pinned ${approval.keyType} ${approval.fingerprint} for ${approval.host}:${approval.port}.`);
        return EXIT.ok;
      }
      case 'reject': {
        const id = requirePositional(positionals, 0, 'the approval id', SSH_USAGE);
        const op = await asOperator(values);
        const { approval } = await op.client.call<{ approval: { host: string; port: number; fingerprint: string } }>('POST', op.path(`/ssh/hostkeys/${encodeURIComponent(id)}/reject`));
        say(line`Rejected ${approval.fingerprint} for ${approval.host}:${approval.port}; connections offering it stay refused.`);
        return EXIT.ok;
      }
      default:
        throw new CliError(`Unknown ssh hostkey command "${sub ?? ''}".\n\n${SSH_USAGE}`, EXIT.usage);
    }
  }
  throw new CliError(`Unknown ssh command "${group ?? ''}".\n\n${SSH_USAGE}`, EXIT.usage);
}
