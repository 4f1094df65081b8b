import { openSync, closeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { CliError, EXIT } from './errors.js';

/**
 * Where passwords come from (invariant 8): a hidden prompt on the terminal,
 * or standard input with --password-stdin. Never argv, never the environment:
 * the agent shares this machine and can read both.
 */
export interface PasswordSource {
  /** Reads one password; `label` is the prompt text. */
  read(label: string): Promise<string>;
}

let stdinLines: Promise<string[]> | undefined;

/** All of stdin, split into lines (read once, shared by every read). */
function readStdinLines(): Promise<string[]> {
  stdinLines ??= new Promise((resolve, reject) => {
    let data = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => (data += chunk));
    process.stdin.on('end', () => resolve(data.split(/\r?\n/)));
    process.stdin.on('error', reject);
  });
  return stdinLines;
}

function stdinSource(option: string): PasswordSource {
  let next = 0;
  return {
    async read(label) {
      const lines = await readStdinLines();
      const line = lines[next];
      next += 1;
      if (line === undefined || line === '') {
        throw new CliError(`${option}: expected the ${label.replace(/ \(to run: .*\)/, '').replace(/:\s*$/, '').toLowerCase()} on line ${next} of standard input.`, EXIT.usage);
      }
      return line;
    },
  };
}

/** Reads a line from a TTY without echoing it. */
function readHidden(input: ReadStream, label: string): Promise<string> {
  return new Promise((resolve, reject) => {
    process.stderr.write(label);
    let value = '';
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    const finish = (error?: Error) => {
      input.setRawMode(false);
      input.pause();
      input.removeListener('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') return finish();
        if (char === '\u0003') return finish(new CliError('Cancelled.', EXIT.error));
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else if (char >= ' ') value += char;
      }
    };
    input.on('data', onData);
  });
}

function ttySource(): PasswordSource {
  return {
    async read(label) {
      if (process.stdin.isTTY) return readHidden(process.stdin as ReadStream, label);
      // stdin is a pipe: ask on the controlling terminal, as ssh and sudo do.
      let fd: number;
      try {
        fd = openSync('/dev/tty', 'r');
      } catch {
        throw new CliError('No terminal to ask for the password on. Pipe it on standard input with --password-stdin.', EXIT.usage);
      }
      const input = new ReadStream(fd);
      try {
        return await readHidden(input, label);
      } finally {
        input.destroy();
        try {
          closeSync(fd);
        } catch {
          // already closed by destroy()
        }
      }
    },
  };
}

/** `option` names the flag in errors (--password-stdin, or --token-stdin for a token). */
export function passwordSource(fromStdin: boolean | undefined, option = '--password-stdin'): PasswordSource {
  return fromStdin ? stdinSource(option) : ttySource();
}

/** Reads a visible line from the terminal (never stdin, which may carry a password). */
function readLine(input: ReadStream, label: string): Promise<string> {
  return new Promise((resolve) => {
    process.stderr.write(label);
    input.setEncoding('utf8');
    input.resume();
    let value = '';
    const onData = (chunk: string) => {
      value += chunk;
      if (value.includes('\n') || value.includes('\r')) {
        input.pause();
        input.removeListener('data', onData);
        resolve(value.split(/\r?\n|\r/)[0] ?? '');
      }
    };
    input.on('data', onData);
  });
}

/** Asks a yes/no question on the terminal; without one, the caller must pass --yes. */
export async function confirm(question: string): Promise<boolean> {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r');
  } catch {
    throw new CliError('There is no terminal to ask for confirmation on. Re-run with --yes to confirm.', EXIT.usage);
  }
  const input = new ReadStream(fd);
  try {
    const answer = await readLine(input, `${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    input.destroy();
  }
}
