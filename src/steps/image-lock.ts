/**
 * A shared/exclusive lock over libvips work in this process, with a bound on
 * the shared holders: images in the works at once (each runs on one of
 * libuv's pool threads, or waits in its queue), kept apart from jobs at once:
 * fewer images than jobs keep the cores busy while jobs wait on a network,
 * and with several outputs an input the bound keeps file work from queueing
 * behind a pile of images (docs/BENCHMARKS.md, Image work and jobs).
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
  private readonly waiting: { exclusive: boolean; soon: boolean; grant: () => void }[] = [];

  constructor(slots = Number.POSITIVE_INFINITY) {
    this.slots = slots;
  }

  /** Sets how many shared holders may run at once (waiters beyond a larger bound start now). */
  setSlots(slots: number): void {
    if (!(slots >= 1)) throw new RangeError(`Expected image slots to be >= 1, got \`${slots}\``);
    this.slots = slots;
    this.next();
  }

  /**
   * Runs fn while no exclusive holder runs and a slot is free. `soon`: ahead
   * of the shared waiters that are not (never of an exclusive one), for work
   * that finishes something started, such as the outputs of pixels already
   * decoded: they are made before another input is decoded, so its pixels are
   * held for as short a time as possible.
   */
  runShared<T>(fn: () => Promise<T>, soon = false): Promise<T> {
    return this.run(false, fn, soon);
  }

  /** Runs fn alone: after every holder before it has finished, with none beside it. */
  runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(true, fn);
  }

  /** Holders now (tests, metrics). */
  get holders(): { shared: number; exclusive: boolean } {
    return { shared: this.shared, exclusive: this.exclusive };
  }

  /** Waiting for their turn now (metrics). */
  get waiters(): number {
    return this.waiting.length;
  }

  private async run<T>(exclusive: boolean, fn: () => Promise<T>, soon = false): Promise<T> {
    await new Promise<void>((grant) => {
      const waiter = { exclusive, soon, grant };
      // After the last exclusive waiter and the other soon ones, before the rest.
      let at = this.waiting.length;
      if (soon) while (at > 0 && !this.waiting[at - 1]!.exclusive && !this.waiting[at - 1]!.soon) at--;
      this.waiting.splice(at, 0, waiter);
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
