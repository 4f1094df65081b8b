#!/usr/bin/env node
// The aip launcher. It hardens the process first (not dumpable, SIGUSR1 can
// no longer open the inspector, an inspector asked for at start is closed)
// with nothing but Node's built-ins loaded, and only then loads the CLI and
// everything it imports: the window in which a same-user agent could open an
// inspector is Node's own start-up, not the time it takes to load the kernel.
import { hardenProcess } from '../dist/lib/harden.js';

hardenProcess();
await import('../dist/cli/main.js');
