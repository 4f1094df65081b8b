import { describe, expect, it } from 'vitest';
import { compileManifest, type ManifestError, secretFieldsOf, annotationsFor } from '../src/protocol/index.js';
import { plugin } from './fixtures/good.js';

const base = () => structuredClone(plugin.manifest) as unknown as Record<string, any>;
const problems = (manifest: unknown) => {
  try {
    compileManifest(manifest);
    return [];
  } catch (error) {
    return (error as ManifestError).problems;
  }
};

describe('manifest validation', () => {
  it('accepts a good manifest and reads its secret fields', () => {
    const compiled = compileManifest(plugin.manifest);
    expect(compiled.inputs.get('greet')!({ name: 'x' })).toBe(true);
    expect(secretFieldsOf(plugin.manifest.credentialSchemas.token!)).toEqual(['token']);
  });

  it('names the field of every problem', () => {
    const m = base();
    delete m.version;
    m.actions[0].risk = 'spicy';
    m.extra = true;
    expect(problems(m)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/missing field "version"/),
        expect.stringMatching(/actions\[0\]\.risk: must be one of "read", "write", "destructive"/),
        expect.stringMatching(/unknown field "extra"/),
      ]),
    );
  });

  it('compiles every schema in strict mode: a typo in a keyword is refused, with where', () => {
    const m = base();
    m.actions[0].input.requird = ['name'];
    expect(problems(m)).toEqual([expect.stringMatching(/^actions\[0\]\.input: strict mode: unknown keyword: "requird"/)]);
  });

  it('refuses secret marks outside credential schemas, duplicate actions, bad names and limits', () => {
    const m = base();
    m.actions[0].input.properties.name['x-secret'] = true;
    m.actions.push(structuredClone(m.actions[0]));
    expect(problems(m)).toEqual(expect.arrayContaining([expect.stringMatching(/belongs in credential schemas only/), expect.stringMatching(/"greet" is used twice/)]));
    const n = base();
    n.actions[0].name = 'Greet-Now';
    n.actions[0].limits.timeoutMs = 99 * 60_000;
    expect(problems(n)).toEqual(expect.arrayContaining([expect.stringMatching(/actions\[0\]\.name/), expect.stringMatching(/actions\[0\]\.limits\.timeoutMs/)]));
  });

  it('derives MCP annotations from risk unless the manifest gives them', () => {
    expect(annotationsFor({ risk: 'read', title: 't' })).toMatchObject({ readOnlyHint: true, destructiveHint: false });
    expect(annotationsFor({ risk: 'destructive', title: 't' })).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    expect(annotationsFor({ risk: 'write', title: 't', annotations: { idempotentHint: true } })).toMatchObject({ idempotentHint: true });
  });
});
