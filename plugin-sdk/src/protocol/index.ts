/**
 * `@aipermission/plugin-sdk/protocol` — the wire definition of the plugin
 * protocol, imported by the kernel and by every plugin.
 */
export * from './messages.js';
export * from './manifest.js';
export { BoundedMessageReader, FramedMessageWriter, ProtocolViolation } from './framing.js';
