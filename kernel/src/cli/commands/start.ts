import { startGateway, DEFAULT_HOST, DEFAULT_PORT, VERSION } from '../../main.js';
import { resolveDataDir } from '../../vault/index.js';
import { parse } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { isKernelError } from '../../lib/errors.js';

/** How long stopping may take: lock drains running actions for up to 5 s, plugins get their stop escalation. */
const SHUTDOWN_DEADLINE_MS = 15_000;

export const START_USAGE = 'aip start [--data-dir DIR] [--host 127.0.0.1] [--port 3210]';

/** Runs the gateway in the foreground until SIGINT/SIGTERM. */
export async function startCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { host: { type: 'string' }, port: { type: 'string' } }, START_USAGE);
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new CliError(`--port must be a number from 0 to 65535, not "${values.port}".`, EXIT.usage);
  const dataDir = resolveDataDir(values['data-dir']);
  // Signals are ours from the first moment: one that arrives while the gateway starts is handled once it has.
  let pending: string | undefined;
  let onSignal = (signal: string) => {
    pending ??= signal;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  let gateway;
  try {
    gateway = await startGateway({ dataDir, host: values.host ?? DEFAULT_HOST, port });
  } catch (error) {
    if (isKernelError(error)) throw new CliError(error.message);
    throw error;
  }
  const databases = await gateway.kernel.listDatabases();
  const lines = [
    `AIPermission ${VERSION} listening on ${gateway.url} (local only)`,
    `Data directory: ${dataDir}`,
    databases.length === 0
      ? 'No database yet. In another terminal: aip db create main   then: aip unlock'
      : `Databases: ${databases.map((d) => d.name).join(', ')} (all locked). Unlock one with: aip unlock --db NAME`,
    'Stop with Ctrl-C.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second Ctrl-C means now: the databases' files are consistent at every commit.
        process.stdout.write(`${signal} again: exiting without waiting.\n`);
        resolve(EXIT.error);
        return;
      }
      stopping = true;
      process.stdout.write(`\n${signal}: locking databases and stopping...\n`);
      // Stopping is bounded: a vanished data directory or a wedged plugin must not keep the gateway up.
      const deadline = setTimeout(() => {
        process.stderr.write(`aip: the gateway did not stop within ${SHUTDOWN_DEADLINE_MS / 1000} s; exiting anyway.\n`);
        resolve(EXIT.error);
      }, SHUTDOWN_DEADLINE_MS);
      deadline.unref();
      gateway.close().then(
        () => resolve(EXIT.ok),
        (error: unknown) => {
          process.stderr.write(`aip: stopping the gateway failed: ${error instanceof Error ? error.message : String(error)}\n`);
          resolve(EXIT.error);
        },
      );
    };
    onSignal = stop;
    if (pending) stop(pending);
  });
  // Exit explicitly: nothing left behind (a socket, a timer) may keep a stopped gateway's process alive.
  process.exit(code);
}
