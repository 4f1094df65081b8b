/** workspace — one unlocked database with its per-database services wired together. */
export { openWorkspace } from './workspace.js';
export type { Workspace, InflightTracker, MaintenanceReport } from './workspace.js';
