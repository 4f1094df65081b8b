/**
 * A shared allowance for the bytes the MCP endpoint holds while it reads
 * messages that have not fully arrived (HTTP bodies, bridge lines).
 * Invariant 8 (the agent is a local adversary): one request is capped at
 * 2 MiB, but an agent can open any number of connections and send each body
 * slowly, just under its cap; without a shared bound the gateway's memory
 * grows with the number of connections. What does not fit is refused (the
 * endpoint answers 503 and closes that connection), nothing else is hurt.
 */
export class ByteBudget {
  private used = 0;

  constructor(readonly maxBytes: number) {}

  /** Takes `bytes` if they fit, else takes nothing and answers false. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.maxBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  get usedBytes(): number {
    return this.used;
  }
}
