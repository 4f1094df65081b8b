/** events — the in-process bus behind the live event stream (SSE). */
export { createEventBus } from './events.js';
export type { EventBus, KernelEvent } from './events.js';
