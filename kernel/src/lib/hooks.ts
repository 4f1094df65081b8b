/**
 * A list of listeners run in order, awaited. It is how a store tells whoever
 * depends on its changes (approvals re-checks pending requests when a token,
 * grant or target changes) without holding a reference to them: the listener
 * is added by the composition once both exist, so neither module needs the
 * other and nothing is bound late through a placeholder.
 */
export interface Hooks<A extends unknown[]> {
  run(...args: A): Promise<void>;
  add(listener: (...args: A) => Promise<void> | void): void;
}

export function createHooks<A extends unknown[]>(): Hooks<A> {
  const listeners: Array<(...args: A) => Promise<void> | void> = [];
  return {
    async run(...args) {
      for (const listener of listeners) await listener(...args);
    },
    add(listener) {
      listeners.push(listener);
    },
  };
}
