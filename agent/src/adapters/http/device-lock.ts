/**
 * One-at-a-time gate per device: a caller runs only after every earlier caller finished. A caller whose
 * signal aborts while waiting gives up its turn without letting later callers overtake the one running.
 */
export class DeviceLock {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /** Callers queued or running. */
  get pending(): number {
    return this.waiting;
  }

  /** Runs `fn` in turn; resolves `{ ran: false }` without running it when `signal` aborts first. */
  async run<T>(
    signal: AbortSignal | undefined,
    fn: () => Promise<T>,
  ): Promise<{ ran: true; value: T } | { ran: false }> {
    const prev = this.tail;
    let release = (): void => {};
    const mine = new Promise<void>((r) => {
      release = r;
    });
    this.tail = prev.then(() => mine);
    this.waiting++;
    try {
      if (!(await turnOrAbort(prev, signal))) return { ran: false };
      return { ran: true, value: await fn() };
    } finally {
      this.waiting--;
      release();
    }
  }
}

function turnOrAbort(prev: Promise<void>, signal: AbortSignal | undefined): Promise<boolean> {
  if (!signal) return prev.then(() => true);
  if (signal.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = (): void => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    void prev.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(!signal.aborted);
    });
  });
}
