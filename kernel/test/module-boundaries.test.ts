import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The lint rule that keeps kernel modules entered through their index.ts and
 * the vault's capabilities where they belong (eslint-rules/module-boundaries.js),
 * run by the project's own eslint on code it has not seen.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const eslint = `${root}node_modules/eslint/bin/eslint.js`;

function lint(file: string, code: string): { ok: boolean; output: string } {
  const result = spawnSync(process.execPath, [eslint, '--no-warn-ignored', '--stdin', '--stdin-filename', file, '--rule', '{"@typescript-eslint/no-unused-vars":"off"}'], {
    cwd: root,
    input: code,
    encoding: 'utf8',
  });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

describe('module boundaries', () => {
  it('has the project eslint to run', () => {
    expect(existsSync(eslint)).toBe(true);
  });

  it('refuses a deep import into another module and names the index to use', () => {
    const result = lint('kernel/src/http/routes/example.ts', "import { createApprovalStore } from '../../approvals/requests.js';\nexport const x = createApprovalStore;\n");
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/Import the approvals module through its index\.ts \("\.\.\/\.\.\/approvals\/index\.js"\)/);
  });

  it('accepts the index, lib/ and the module\'s own files', () => {
    const code = [
      "import { createApprovalStore } from '../../approvals/index.js';",
      "import { KernelError } from '../../lib/errors.js';",
      "import { bodySchema } from '../helpers.js';",
      'export const x = [createApprovalStore, KernelError, bodySchema];',
      '',
    ].join('\n');
    const result = lint('kernel/src/http/routes/example.ts', code);
    expect(result.output).not.toMatch(/module-boundaries/);
  });

  it('refuses the vault\'s capabilities outside the modules allowed, but not its types or pure helpers', () => {
    const opens = lint('kernel/src/pipeline/example.ts', "import { createVault } from '../vault/index.js';\nexport const x = createVault;\n");
    expect(opens.ok).toBe(false);
    expect(opens.output).toMatch(/createVault from the vault can open or read databases/);
    const fine = lint('kernel/src/pipeline/example.ts', "import { assertDatabaseName, type SqlDb } from '../vault/index.js';\nexport type T = SqlDb;\nexport const x = assertDatabaseName;\n");
    expect(fine.output).not.toMatch(/module-boundaries/);
    const allowed = lint('kernel/src/workspace/example.ts', "import { createVault } from '../vault/index.js';\nexport const x = createVault;\n");
    expect(allowed.output).not.toMatch(/module-boundaries/);
  });

  it('holds for the kernel as it is (the lint step runs the same rule)', () => {
    const result = spawnSync(process.execPath, [eslint, 'kernel/src'], { cwd: root, encoding: 'utf8' });
    expect(result.stdout).not.toMatch(/module-boundaries/);
  });
});
