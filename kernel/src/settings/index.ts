/** settings — per-database settings (approval TTL, MCP auto-start, retention, redaction) with defaults. */
export { createSettingsStore, DEFAULT_SETTINGS, SETTINGS_PATCH_SCHEMA } from './settings.js';
export type { SettingsStore, SettingsValues } from './settings.js';
