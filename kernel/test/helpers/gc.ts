import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A garbage collector to measure retained memory with (V8's gc, exposed at run time). */
export function collector(): () => void {
  setFlagsFromString('--expose_gc');
  return runInNewContext('gc') as () => void;
}

/** The heap in use after two full collections (the second collects what the first's finalizers freed). */
export function settledHeap(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
