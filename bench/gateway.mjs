// The gateway under benchmark, in its own process as in real use: a fresh
// data directory, one database, a Redis target and a token whose get_key
// grant is always_run. Prints one JSON line {url, token, targetRef}.
import { startGateway } from '@aipermission/kernel';

const [dataDir] = process.argv.slice(2);
const PASSWORD = 'Bench-Password-2026x';
const gateway = await startGateway({ dataDir, port: 0, log: () => {} });
const { kernel } = gateway;
await kernel.createDatabase('bench', PASSWORD);
const ws = await kernel.unlock('bench', PASSWORD, 'operator:bench');
await ws.mcp.set(true, 'operator:bench');
const target = await ws.targets.createTarget({ kind: 'redis', name: 'local', config: { host: '127.0.0.1', port: 6379 } }, 'operator:bench');
const profile = await ws.targets.createProfile(target.id, { label: 'open', credentialKind: 'none' }, 'operator:bench');
const token = await ws.tokens.create({ name: 'bench' }, 'operator:bench');
await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: 'get_key', rule: 'always_run' }, 'operator:bench');
process.stdout.write(`${JSON.stringify({ url: gateway.url, token: token.secret, targetRef: `redis:${target.id}:${profile.id}` })}\n`);
process.stdin.on('data', async (chunk) => {
  if (String(chunk).trim() === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.stdout.write(`${JSON.stringify({ user, system })}\n`);
  }
  if (String(chunk).trim() === 'verify') {
    const report = await ws.audit.verify();
    process.stdout.write(`${JSON.stringify({ ok: report.ok, entries: report.entries })}\n`);
  }
});
process.stdin.on('end', () => gateway.close().then(() => process.exit(0)));
