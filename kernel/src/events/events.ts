/** Something the UI and the terminal approvals view want to hear about at once (no polling). */
export type KernelEvent =
  | { type: 'request.created' | 'request.updated'; database: string; requestId: string; status: string; at: string }
  | { type: 'message.created'; database: string; messageId: string; direction: 'to_agent' | 'to_operator'; at: string }
  | { type: 'database.unlocked' | 'database.locked'; database: string; at: string }
  | { type: 'mcp.switched'; database: string; running: boolean; at: string };

export interface EventBus {
  emit(event: KernelEvent): void;
  /** Returns the unsubscribe function. */
  subscribe(listener: (event: KernelEvent) => void): () => void;
  readonly listenerCount: number;
}

export function createEventBus(): EventBus {
  const listeners = new Set<(event: KernelEvent) => void>();
  return {
    emit(event) {
      for (const listener of [...listeners]) {
        try {
          listener(event);
        } catch {
          // One broken subscriber (a closed stream) must not stop the others.
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get listenerCount() {
      return listeners.size;
    },
  };
}
