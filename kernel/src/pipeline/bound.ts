// The output bound lives in lib/bound.ts, shared with connectors/plugin-text.ts (every string a plugin sends is bounded there).
export { boundOutput, truncateUtf8, type BoundedOutput } from '../lib/bound.js';
