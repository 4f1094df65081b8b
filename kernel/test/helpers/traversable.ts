import { chmodSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this test runs from (kernel/test/helpers -> the repository root). */
const CHECKOUT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * Tests that run a gateway as an ordinary user (`nobody`, via setpriv, when
 * the suite runs as root) need that user to reach this checkout. A clone may
 * sit under a 0700 folder (`mktemp -d`); a capability such as
 * CAP_DAC_READ_SEARCH does not help there, since access(2), which Node's
 * existsSync and native-module loaders use, checks with the real uid and no
 * capabilities. So, as root only, every ancestor of the checkout that others
 * cannot traverse gets the search bit (o+x: enter a known path, never list
 * or read). It is left set: test files run in parallel, and one putting a
 * mode back would pull the checkout from under another's gateway.
 */
export function letOthersTraverseCheckout(): void {
  if (process.getuid?.() !== 0) return;
  for (let dir = CHECKOUT; ; dir = dirname(dir)) {
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
    if (dirname(dir) === dir) break;
  }
}
