import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';
import { startSshd, type Sshd } from './helpers/sshd.js';

/**
 * A real plugin process (bundled with ssh2, under bubblewrap where the machine
 * has it) logs in to a real sshd through its endpoint, authenticating with
 * kernel/sign and checking the host key with kernel/hostKey: the private key
 * stays in the kernel (invariant 2), the host key is the operator's decision
 * (invariant 3).
 */
let h: PluginHarness;
let sshd: Sshd;

beforeAll(async () => {
  h = await pluginHarness({ fixtures: ['ssh-login'], ssh: true });
  sshd = await startSshd();
}, 60_000);
afterAll(async () => {
  await h?.cleanup();
  await sshd?.stop();
});

async function sshTarget(keyId: string) {
  const target = await h.ws.targets.createTarget({ kind: 'ssh-login', name: `ssh-${Math.random().toString(36).slice(2, 8)}`, config: { host: '127.0.0.1', port: sshd.port } }, 'operator:test');
  const profile = await h.ws.targets.createProfile(target.id, { label: 'key', credentialKind: 'ssh_key', config: { username: sshd.user, keyId }, secret: {} }, 'operator:test');
  const token = await h.ws.tokens.create({ name: `agent-${target.id}` }, 'operator:test');
  await h.ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'always_run' }, 'operator:test');
  return { token: token.secret, targetRef: `ssh-login:${target.id}:${profile.id}` };
}

describe('kernel/sign and kernel/hostKey for a real plugin', () => {
  it('an unknown host key stops the plugin login and leaves an approval; after approval the plugin logs in by kernel signing, and no message it got carries key material', async () => {
    const key = await h.ws.sshKeys.generate({ name: 'plugin-key' }, 'operator:test');
    await sshd.authorize([key.publicKey]);
    const t = await sshTarget(key.id);

    const first = await h.call(t, 'login', { publicKey: key.publicKey });
    expect(first.status, JSON.stringify(first) + h.logs.slice(-20).join("\n")).toBe("completed");
    expect((first.output as { loggedIn: { error?: string } }).loggedIn.error).toMatch(/verification failed/i);
    const [approval] = await h.ws.hostKeys.approvals({ status: 'pending' });
    expect(approval).toMatchObject({ host: '127.0.0.1', port: sshd.port, fingerprint: sshd.hostFingerprint, reason: 'unknown' });
    await h.ws.hostKeys.approve(approval!.id, {}, 'operator:test');

    const second = await h.call(t, 'login', { publicKey: key.publicKey });
    const output = second.output as { loggedIn: { out?: string; error?: string }; attempts: Record<string, { refused?: string; code?: string }>; received: string };
    expect(output.loggedIn, JSON.stringify(output.loggedIn)).toEqual({ out: 'plugin-logged-in' });
    // The same live invocation cannot turn the signer to anything else.
    expect(output.attempts.gitCommit).toMatchObject({ code: 'sign_not_auth_data' });
    expect(output.attempts.otherUser).toMatchObject({ code: 'sign_wrong_user' });
    // Nor make the operator's host-key approvals name a host or port its target does not have.
    expect(output.attempts.otherHost).toMatchObject({ code: 'host_key_wrong_host' });
    expect(output.attempts.otherPort).toMatchObject({ code: 'host_key_wrong_host' });
    expect(await h.ws.hostKeys.approvals({ status: 'pending' })).toEqual([]);

    // Everything the kernel wrote to the plugin: no private key, in any encoding.
    const received = Buffer.from(output.received, 'base64').toString('utf8');
    expect(received).toContain('action/invoke');
    const row = await h.ws.db.get<{ id: string; private_sealed: Uint8Array }>('SELECT id, private_sealed FROM ssh_keys WHERE name = ?', ['plugin-key']);
    const pem = h.ws.handle.sealer.open(row!.private_sealed, `ssh_keys:${row!.id}:private`);
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const seed = der.subarray(der.length - 32);
    for (const form of [pem.split('\n')[1]!, der.toString('base64'), seed.toString('base64'), seed.toString('hex'), seed.toString('base64url')]) {
      expect(received).not.toContain(form);
    }
    expect(received).not.toMatch(/PRIVATE KEY/);
  }, 60_000);
});
