import type { ByteBudget } from './byte-budget.js';

/**
 * Invariant 8 (the agent is a local adversary, here one that floods): reads
 * a request body with its cap enforced as the bytes arrive: a declared
 * Content-Length over the cap is refused without reading anything, and a
 * chunked body stops being read the moment it passes the cap. The rest is
 * never pulled off the socket (the caller answers with `Connection: close`),
 * so memory stays bounded by the cap whatever the client sends. A body read
 * in full first and measured after let one 256 MiB request take the gateway
 * to 853 MiB. With a `budget`, the bytes held until the body is complete
 * also count against what all such reads may hold together (`busy` when
 * they would not fit).
 */
export async function readBodyWithin(request: Request, maxBytes: number, budget?: ByteBudget): Promise<{ text: string } | { tooLarge: true } | { busy: true } | { aborted: true }> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes) return { tooLarge: true };
  if (!request.body) return { text: '' };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  try {
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch {
        // The client went away mid-body (or the body was malformed): nothing to answer to.
        return { aborted: true };
      }
      const { done, value } = next;
      if (done) break;
      received += value.byteLength;
      // Not reader.cancel(): that destroys the socket before the 413 can be written.
      if (received > maxBytes) return { tooLarge: true };
      // Held while the rest arrives, however slowly: counted against the shared budget.
      if (budget && !budget.take(value.byteLength)) {
        received -= value.byteLength;
        return { busy: true };
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
    budget?.give(received);
  }
  return { text: Buffer.concat(chunks).toString('utf8') };
}
