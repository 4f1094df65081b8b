import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError, EXIT } from './errors.js';

/** The plugin SDK of this AIPermission installation (kernel/{src,dist}/cli -> repository root). */
export function sdkDir(): string {
  return fileURLToPath(new URL('../../../plugin-sdk', import.meta.url));
}

function files(name: string, sdk: string): Record<string, string> {
  const title = name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => `${dash ? ' ' : ''}${c.toUpperCase()}`);
  return {
    'package.json': `${JSON.stringify(
      {
        name: `aip-plugin-${name}`,
        version: '0.1.0',
        private: true,
        description: `The ${title} connector for AIPermission.`,
        type: 'module',
        aipermission: { entry: 'dist/plugin.mjs' },
        files: ['dist/plugin.mjs', 'README.md'],
        scripts: { build: 'node build.mjs', test: 'node build.mjs && vitest run' },
        dependencies: { '@aipermission/plugin-sdk': `file:${sdk}` },
        devDependencies: { esbuild: '^0.28.2', vitest: '^4.1.0' },
      },
      null,
      2,
    )}\n`,
    'build.mjs': `// Bundles the connector into one file: the kernel runs dist/plugin.mjs in a
// sandbox that can read only this package, so everything it needs is inside.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/plugin.ts'],
  outfile: 'dist/plugin.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: "import { createRequire as __aipCreateRequire } from 'node:module'; const require = __aipCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
`,
    'src/plugin.ts': `import { configError, defineAction, definePlugin, isEntryPoint, serve } from '@aipermission/plugin-sdk';

/**
 * The ${title} connector. Start here: each action declares its input and
 * output as JSON Schemas (the handler's types come from them), a risk
 * (read / write / destructive) and limits. The kernel decides whether a call
 * may run; this code only does the work.
 */
export const plugin = definePlugin({
  id: '${name}',
  version: '0.1.0',
  title: '${title}',
  description: 'Greets people. Replace with what your connector does.',
  // Non-secret target configuration, shown to the operator.
  targetSchema: {
    type: 'object',
    additionalProperties: false,
    properties: { greeting: { type: 'string', maxLength: 100, default: 'Hello' } },
  },
  // Credential profiles. Fields marked "x-secret" are sealed in the vault and
  // handed over only for the call that needs them; never log or return them.
  credentialSchemas: {
    token: {
      type: 'object',
      additionalProperties: false,
      required: ['token'],
      properties: { user: { type: 'string', maxLength: 100 }, token: { type: 'string', minLength: 1, 'x-secret': true } },
    },
  },
  transports: ['none'],
  help: { summary: 'Greets people by name.', usage: 'Call greet with a name.' },
  actions: [
    defineAction({
      name: 'greet',
      title: 'Greet someone',
      description: 'Returns a greeting for a name.',
      risk: 'read',
      input: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: { name: { type: 'string', minLength: 1, maxLength: 100 } },
      },
      output: {
        type: 'object',
        additionalProperties: false,
        required: ['greeting'],
        properties: { greeting: { type: 'string' }, as: { type: ['string', 'null'] } },
      },
      limits: { timeoutMs: 5_000, maxOutputBytes: 4096 },
      handler: (input, ctx) => {
        if (input.name.trim() === '') throw configError('A name is needed.');
        ctx.log.info(\`greeting \${input.name}\`);
        const greeting = typeof ctx.target.greeting === 'string' ? ctx.target.greeting : 'Hello';
        return { greeting: \`\${greeting}, \${input.name}!\`, as: (ctx.credentials.fields.user as string | undefined) ?? null };
      },
    }),
  ],
});

// Serve over stdio when the kernel runs this file (tests import the definition instead).
if (isEntryPoint(import.meta.url)) serve(plugin);
`,
    'test/conformance.test.ts': `import { describeConformance } from '@aipermission/plugin-sdk/testing';

// Handshake, manifest, schemas, unknown action, cancel within 1 s, clean
// shutdown, nothing but protocol on stdout, no secret on stderr.
describeConformance({ entry: new URL('../dist/plugin.mjs', import.meta.url) });
`,
    'test/plugin.test.ts': `import { describe, expect, it } from 'vitest';
import { createHarness } from '@aipermission/plugin-sdk/testing';
import { plugin } from '../src/plugin.js';

describe('${name}', () => {
  it('greets', async () => {
    const harness = createHarness(plugin);
    const output = await harness.invoke('greet', { name: 'Ada' }, { target: { greeting: 'Hi' }, credentials: { kind: 'token', fields: { token: 't0ken-value' } } });
    expect(output).toEqual({ greeting: 'Hi, Ada!', as: null });
  });
});
`,
    'README.md': `# ${title} connector

An AIPermission connector, scaffolded by \`aip plugin new ${name}\`.

- \`npm install && npm test\`: builds \`dist/plugin.mjs\` and runs the conformance suite and the unit tests.
- \`aip plugin install .\`: installs it into your gateway (you are shown what it asks for first).

See docs/writing-a-connector.md in the AIPermission repository.
`,
    '.gitignore': 'node_modules/\ndist/\n',
  };
}

/** Writes a new connector project into dir (which must not exist yet, or be empty). */
export async function scaffoldPlugin(name: string, dir: string): Promise<string> {
  if (!/^[a-z][a-z0-9-]{0,63}$/.test(name)) {
    throw new CliError(`"${name}" is not a usable connector id: use lowercase letters, digits and "-", starting with a letter.`, EXIT.usage);
  }
  const existing = await stat(dir).catch(() => undefined);
  if (existing) throw new CliError(`${dir} already exists; pick another --dir (aip never overwrites a folder).`, EXIT.usage);
  for (const [path, content] of Object.entries(files(name, sdkDir()))) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content, { flag: 'wx' });
  }
  return dir;
}
