/**
 * A shared/exclusive lock over libvips work in this process, with a bound on
 * the shared holders: image work at once (each image is one libvips thread
 * on one of libuv's pool threads), kept apart from jobs at once, so a job
 * that reads, hashes, writes or waits on the ledger does not leave an image
 * slot empty meanwhile (docs/BENCHMARKS.md, Image work and jobs).
 * Image steps run shared; a failed one runs again exclusive (alone), because
 * libvips keeps one error buffer for the whole process: when two images fail
 * at once, each error can carry the other's text, or lose its own, and the
 * text decides whether a failure is the input's fault (dead letter) or worth
 * a retry. Waiters are served in order, so an exclusive one is not starved by
 * a stream of shared ones.
 */
export class ImageLock {
  /** Shared holders at once; exclusive holders always run alone. */
  private slots: number;
  private shared = 0;
  private exclusive = false;
  private readonly waiting: { exclusive: boolean; grant: () => void }[] = [];

  constructor(slots = Number.POSITIVE_INFINITY) {
    this.slots = slots;
  }

  /** Sets how many shared holders may run at once (waiters beyond a larger bound start now). */
  setSlots(slots: number): void {
    if (!(slots >= 1)) throw new RangeError(`Expected image slots to be >= 1, got \`${slots}\``);
    this.slots = slots;
    this.next();
  }

  /** Runs fn while no exclusive holder runs and a slot is free. */
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
        if (this.shared >= this.slots) return;
        this.shared++;
      }
      this.waiting.shift();
      head.grant();
    }
  }
}
