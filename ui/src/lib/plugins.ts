/**
 * What the plugins page and the consent screen say about a sandbox level, in
 * plain words, from the fields the kernel reports (`GET .../plugins`,
 * `POST .../plugins/inspect`). Pure functions: tested in logic.test.ts.
 */
export interface SandboxLevel {
  level: string;
  bwrap: boolean;
  nodePermission?: boolean;
  network: string;
  networkIsolated: boolean;
  identity?: string;
  noCapabilities?: boolean;
  canSignalGateway?: boolean;
  memoryLimitBytes?: number | null;
  scratchQuotaBytes?: number | null;
  scratch?: string;
}

export interface PluginAction { name: string; title?: string; risk: string }

export const RISK_ORDER = ['destructive', 'write', 'read'] as const;

/** 1610612736 -> "1.5 GiB", 67108864 -> "64 MiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return 'not limited';
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : Number(value.toFixed(1))} ${units[unit]}`;
}

/** Actions grouped by risk, the riskiest group first; unknown risks last, under their own name. */
export function actionsByRisk(actions: PluginAction[]): { risk: string; actions: PluginAction[] }[] {
  const groups = new Map<string, PluginAction[]>();
  for (const action of actions) {
    const list = groups.get(action.risk) ?? [];
    list.push(action);
    groups.set(action.risk, list);
  }
  const order = (risk: string) => {
    const i = (RISK_ORDER as readonly string[]).indexOf(risk);
    return i === -1 ? RISK_ORDER.length : i;
  };
  return [...groups.entries()].sort((a, b) => order(a[0]) - order(b[0])).map(([risk, list]) => ({ risk, actions: list }));
}

/** The plain-language warnings for a weak sandbox level (none for bubblewrap with its own network and pid namespace). */
export function sandboxWarnings(sandbox: SandboxLevel | null | undefined): string[] {
  if (!sandbox) return [];
  const warnings: string[] = [];
  if (!sandbox.bwrap) warnings.push('No bubblewrap: plugins run with Node\'s permission model alone, without a sandbox of their own.');
  if (sandbox.canSignalGateway) warnings.push('It can see and signal your processes, the gateway included (it could stop the gateway with SIGSTOP).');
  if (!sandbox.networkIsolated) warnings.push('It has the host network: it can reach whatever this machine can reach, not only its target.');
  if (sandbox.noCapabilities === false) warnings.push(`It runs with capabilities (${sandbox.identity ?? 'as the gateway\'s user'}): run the gateway as a normal user.`);
  if (sandbox.memoryLimitBytes === null) warnings.push('Only its JavaScript heap is capped: there is no limit on the whole process\'s memory here.');
  return warnings;
}

/** A sandbox level is weak when any warning applies: the page then offers requireBwrapForThirdParty. */
export const isWeak = (sandbox: SandboxLevel | null | undefined) => sandboxWarnings(sandbox).length > 0;

/** `bwrap+node-permission` -> words. */
export function levelName(level: string): string {
  if (level === 'bwrap+node-permission') return 'bubblewrap + Node permissions';
  if (level === 'node-permission') return 'Node permissions only (no bubblewrap)';
  return level;
}
