/**
 * Whether an installed plugin is the one a database approved (invariant 5,
 * "what was approved is what runs"). The approval lives in the encrypted
 * database; everything the kernel knows of an installed plugin otherwise
 * comes from its folder in the data directory (the install record
 * `.aip-plugin.json` and the package), which anything running as the same
 * user can rewrite. So every part of what runs is compared with the
 * approval: the version, the package integrity, the manifest (by its
 * canonical SHA-256: the descriptor the kernel decides with is built from a
 * manifest that hashes to the approved one, so it is that manifest) and the
 * entry file. Any difference means "not approved: re-approve". This one
 * function is what the catalog, the plugins REST route, `aip plugin list`
 * and `aip plugin verify` all ask.
 */

import type { PluginSource } from './registry.js';

/** What a database approved of an installed plugin (kept in that database, where only its password reaches). */
export interface PluginApproval {
  pluginId: string;
  version: string;
  integrity: string;
  manifestHash: string;
  /** The entry file approved (relative to the package); null for approvals recorded before entries were (then: the approved package.json's). */
  entry?: string | null;
}

/** What is installed, as the kernel would run it. */
export interface InstalledFacts {
  version: string;
  /** The package's integrity (as recorded, or as recomputed by verify); null when it cannot be read as a package. */
  integrity: string | null;
  /** Canonical SHA-256 of the manifest the kernel would describe the plugin with; null when the install record is unreadable. */
  manifestHash: string | null;
  /** The entry file the kernel would start; null when the install record is unreadable. */
  entry: string | null;
  /** The entry the package's own package.json names. */
  packageEntry?: string | null | undefined;
}

export type ApprovalVerdict = { approved: true } | { approved: false; approval: 'none' } | { approved: false; approval: 'differs'; differences: string[] };

const short = (hash: string | null) => (hash === null ? 'unreadable' : hash.replace(/^(sha256-)?([0-9a-f]{12})[0-9a-f]+$/, '$1$2…'));

/** Compares what is installed with one database's approval of it; every difference is named. */
export function approvalVerdict(installed: InstalledFacts, approval: PluginApproval | undefined): ApprovalVerdict {
  if (!approval) return { approved: false, approval: 'none' };
  const differences: string[] = [];
  if (installed.version !== approval.version) differences.push(`version ${installed.version}, approved ${approval.version}`);
  if (installed.integrity !== approval.integrity) differences.push(`package files (integrity ${short(installed.integrity)}, approved ${short(approval.integrity)})`);
  if (installed.manifestHash !== approval.manifestHash) differences.push(`manifest (sha256 ${short(installed.manifestHash)}, approved ${short(approval.manifestHash)})`);
  // An approval that recorded no entry approved the one its package.json names (package.json is part of the integrity compared above).
  const approvedEntry = approval.entry ?? installed.packageEntry ?? null;
  if (installed.entry === null || installed.entry !== approvedEntry) differences.push(`entry ${installed.entry ?? 'unreadable'}, approved ${approvedEntry ?? 'unknown'}`);
  return differences.length === 0 ? { approved: true } : { approved: false, approval: 'differs', differences };
}

/** The verdict as one sentence for the operator, or null when approved. */
export function describeVerdict(verdict: ApprovalVerdict): string | null {
  if (verdict.approved) return null;
  if (verdict.approval === 'none') return 'not approved in this database: approve it with aip plugin install <its source>';
  return `not approved: re-approve it with aip plugin install <its source>. What is installed differs from what this database approved: ${verdict.differences.join('; ')}`;
}

/** Whether a loaded installed plugin is the one a database approved (what the catalog asks). */
export function isApproved(source: Pick<PluginSource, 'manifest' | 'integrity' | 'manifestHash' | 'entry' | 'packageEntry'>, approval: PluginApproval | undefined): boolean {
  return approvalVerdict({ version: source.manifest.version, integrity: source.integrity, manifestHash: source.manifestHash, entry: source.entry, packageEntry: source.packageEntry }, approval).approved;
}
