import { compileManifest, type CompiledManifest } from '@aipermission/plugin-sdk/protocol';
import { canonicalHash } from '../lib/canonical.mjs';

/**
 * Compiled manifests by canonical hash, kept only while a loaded plugin uses
 * them. The host reloads every manifest at each install, removal and reload;
 * compiling is costly (tens of ms: a fresh ajv instance per manifest, so
 * that what it compiled can be freed at all) and was the plugin-removal
 * leak when every reload compiled anew on one shared ajv instance. With this
 * cache an unchanged manifest is compiled once, and a manifest no loaded
 * plugin has any more is dropped with everything compiled for it.
 */
export interface ManifestCache {
  /** The compiled manifest and its canonical hash; throws ManifestError for an invalid one (not cached). */
  compile(manifest: unknown): { compiled: CompiledManifest; manifestHash: string };
  /** Drops every entry whose hash is not in `live`. */
  retainOnly(live: Iterable<string>): void;
  readonly size: number;
}

export function createManifestCache(): ManifestCache {
  const byHash = new Map<string, CompiledManifest>();
  return {
    compile(manifest) {
      const manifestHash = canonicalHash(manifest);
      let compiled = byHash.get(manifestHash);
      if (!compiled) {
        compiled = compileManifest(manifest);
        byHash.set(manifestHash, compiled);
      }
      return { compiled, manifestHash };
    },
    retainOnly(live) {
      const keep = new Set(live);
      for (const hash of byHash.keys()) if (!keep.has(hash)) byHash.delete(hash);
    },
    get size() {
      return byHash.size;
    },
  };
}
