/**
 * A shared/exclusive lock over libvips work in this process. Image steps run
 * shared (many at once); a failed one runs again exclusive (alone), because
 * libvips keeps one error buffer for the whole process: when two images fail
 * at once, each error can carry the other's text, or lose its own, and the
 * text decides whether a failure is the input's fault (dead letter) or worth
 * a retry. Waiters are served in order, so an exclusive one is not starved by
 * a stream of shared ones.
 */
export class ImageLock {
  private shared = 0;
  private exclusive = false;
  private readonly waiting: { exclusive: boolean; grant: () => void }[] = [];

  /** Runs fn while no exclusive holder runs. */
  runShared<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(false, fn);
  }

  /** Runs fn alone: after every holder before it has finished, with none beside it. */
  runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(true, fn);
  }

  /** Holders now, for tests. */
  get holders(): { shared: number; exclusive: boolean } {
    return { shared: this.shared, exclusive: this.exclusive };
  }

  private async run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await new Promise<void>((grant) => {
      this.waiting.push({ exclusive, grant });
      this.next();
    });
    try {
      return await fn();
    } finally {
      if (exclusive) this.exclusive = false;
      else this.shared--;
      this.next();
    }
  }

  private next(): void {
    while (this.waiting.length && !this.exclusive) {
      const head = this.waiting[0]!;
      if (head.exclusive) {
        if (this.shared > 0) return;
        this.exclusive = true;
      } else {
        this.shared++;
      }
      this.waiting.shift();
      head.grant();
    }
  }
}
