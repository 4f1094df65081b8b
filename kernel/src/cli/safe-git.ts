import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * git as aip runs it (invariant 8: the agent can write the repository's
 * .git/config and the user's ~/.gitconfig, and either can name a program
 * that git runs: core.fsmonitor ran one inside `aip mcp init`, the process
 * holding a typed token). So:
 * - no program from any config: fsmonitor off, hooks pointed at /dev/null,
 *   no pager (command-line `-c` beats every config file);
 * - no global or system config at all (GIT_CONFIG_GLOBAL=/dev/null,
 *   GIT_CONFIG_NOSYSTEM=1, and no HOME for a git too old to know the first);
 * - none of the caller's GIT_* variables (GIT_DIR, GIT_CONFIG_COUNT, ...):
 *   the environment is built from nothing but PATH;
 * - never a prompt, never a lock or an index write, and a timeout.
 */
const GIT_TIMEOUT_MS = 5000; // a local read-only query answers in milliseconds; a hung git must not hang aip

const SAFE_OPTIONS = ['--no-pager', '-c', 'core.fsmonitor=false', '-c', 'core.hooksPath=/dev/null', '-c', 'core.pager=cat'];

interface GitRun {
  /** The exit status; undefined when git did not run or did not finish (missing, timed out). */
  status: number | undefined;
  stdout: string;
  stderr: string;
  missing: boolean;
}

function git(cwd: string, args: string[]): GitRun {
  const result = spawnSync('git', [...SAFE_OPTIONS, ...args], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_TERMINAL_PROMPT: '0',
      GIT_OPTIONAL_LOCKS: '0',
      LC_ALL: 'C',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: GIT_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  const missing = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { status: result.error ? undefined : (result.status ?? undefined), stdout: result.stdout ?? '', stderr: (result.stderr ?? '').trim(), missing };
}

/** The nearest directory of `file` that exists (git cannot start in one that does not). */
function existingDirOf(file: string): string {
  let dir = dirname(file);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

const NOT_A_REPOSITORY = /not a git repository|is outside repository/i;

/**
 * What git says about `file`: whether it is in a work tree, tracked, and
 * ignored. `tracked: undefined` means git could not tell (it failed for
 * another reason than "not a repository"); the caller must not assume "no".
 */
export function gitStatusOf(file: string): { inRepository: boolean; tracked: boolean | undefined; ignored: boolean | undefined; problem?: string } {
  const cwd = existingDirOf(file);
  const inside = git(cwd, ['rev-parse', '--is-inside-work-tree']);
  // No git on this machine: nothing can be tracked by it.
  if (inside.missing) return { inRepository: false, tracked: false, ignored: undefined };
  if (inside.status !== 0) {
    if (NOT_A_REPOSITORY.test(inside.stderr)) return { inRepository: false, tracked: false, ignored: undefined };
    return { inRepository: true, tracked: undefined, ignored: undefined, problem: inside.stderr || 'git did not answer in time' };
  }
  if (inside.stdout.trim() !== 'true') return { inRepository: false, tracked: false, ignored: undefined };
  const listed = git(cwd, ['ls-files', '--error-unmatch', '--', file]);
  // ls-files: 0 = tracked, 1 = not tracked (the pathspec matched nothing), anything else = could not tell.
  let tracked: boolean | undefined = listed.status === 0 ? true : listed.status === 1 ? false : undefined;
  if (tracked === undefined && NOT_A_REPOSITORY.test(listed.stderr)) tracked = false;
  const checked = git(cwd, ['check-ignore', '-q', '--', file]);
  // check-ignore: 0 = ignored, 1 = not ignored.
  const ignored = checked.status === 0 ? true : checked.status === 1 ? false : undefined;
  return { inRepository: true, tracked, ignored, ...(tracked === undefined ? { problem: listed.stderr || 'git did not answer in time' } : {}) };
}
