// Kernel module boundaries (ARCHITECTURE.md, STYLE.md "one module, one way in"):
//  1. a module under kernel/src/<module>/ is entered only through its index.ts
//     (lib/ is shared helpers, not a module);
//  2. what can open or read databases (the vault's capabilities) is imported
//     only by the modules allowed to: the composition root, the workspace and
//     the offline `aip db` command. Types, and the vault's pure helpers
//     (name and password rules, SQL literal rendering), may be imported anywhere.
import { dirname, relative, resolve, sep } from 'node:path';

/** Vault exports that are pure functions or constants: no file, no key, no database. */
const VAULT_PURE = new Set([
  // Compares a head record with what the file says; reads nothing itself.
  'describeRollback',
  'assertDatabaseName',
  'assertPasswordRules',
  'passwordProblems',
  'databaseNameFromFile',
  'resolveDataDir',
  'DATABASE_EXTENSION',
  'MIN_PASSWORD_LENGTH',
  'PLAINTEXT_REFUSED_MESSAGE',
  'SCHEMA_VERSION',
  'inlineParams',
  'sqlValue',
  'sqliteCode',
]);
/** Files (relative to kernel/src) that may import the vault's capabilities. */
const VAULT_CAPABLE = [/^kernel\.ts$/, /^main\.ts$/, /^workspace\//, /^vault\//, /^cli\/commands\/db\.ts$/];

function srcRoot(filename) {
  const marker = `${sep}kernel${sep}src${sep}`;
  const at = filename.lastIndexOf(marker);
  return at < 0 ? undefined : filename.slice(0, at + marker.length);
}

const moduleOf = (rel) => (rel.includes('/') ? rel.split('/')[0] : undefined);

export default {
  meta: {
    type: 'problem',
    docs: { description: 'kernel modules are entered through their index.ts; vault capabilities only where allowed' },
    schema: [],
    messages: {
      deep: 'Import the {{module}} module through its index.ts ("{{suggest}}"), not {{file}}: a module is entered only through its index (STYLE.md).',
      vault: '{{names}} from the vault can open or read databases; only the composition root, the workspace and `aip db` may import it. Take what you need as a dependency instead.',
    },
  },
  create(context) {
    const filename = context.filename ?? context.getFilename();
    const root = srcRoot(filename);
    if (!root) return {};
    const fromRel = relative(root, filename).split(sep).join('/');
    const fromModule = moduleOf(fromRel);

    const check = (node, source, specifiers, typeOnly) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const target = resolve(dirname(filename), source);
      if (!target.startsWith(root)) return;
      const rel = relative(root, target).split(sep).join('/');
      const module = moduleOf(rel);
      if (!module || module === 'lib' || module === fromModule) return;
      const file = rel.slice(module.length + 1);
      if (!/^index\.(js|ts|mjs)$/.test(file)) {
        const suggest = source.slice(0, source.lastIndexOf('/') + 1) + 'index.js';
        context.report({ node, messageId: 'deep', data: { module, file: rel, suggest } });
        return;
      }
      if (module === 'vault' && !typeOnly && !VAULT_CAPABLE.some((pattern) => pattern.test(fromRel))) {
        const capabilities = specifiers.filter((s) => !s.typeOnly && !VAULT_PURE.has(s.name)).map((s) => s.name);
        if (capabilities.length > 0) context.report({ node, messageId: 'vault', data: { names: capabilities.join(', ') } });
      }
    };

    const specifiersOf = (node) =>
      (node.specifiers ?? []).map((s) => ({
        name: s.imported?.name ?? s.local?.name ?? s.exported?.name ?? '*',
        typeOnly: s.importKind === 'type' || s.exportKind === 'type',
      }));

    return {
      ImportDeclaration(node) {
        const specifiers = specifiersOf(node);
        check(node, node.source.value, specifiers.length ? specifiers : [{ name: '(side effects)', typeOnly: false }], node.importKind === 'type');
      },
      ExportNamedDeclaration(node) {
        if (node.source) check(node, node.source.value, specifiersOf(node), node.exportKind === 'type');
      },
      ExportAllDeclaration(node) {
        check(node, node.source.value, [{ name: '*', typeOnly: false }], node.exportKind === 'type');
      },
      ImportExpression(node) {
        if (node.source.type === 'Literal') check(node, node.source.value, [{ name: '(dynamic import)', typeOnly: false }], false);
      },
    };
  },
};
