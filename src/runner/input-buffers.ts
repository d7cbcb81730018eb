/**
 * Buffers that inputs are read into, kept for the next job instead of
 * allocated per job. Why: V8 counts every new ArrayBuffer as external memory.
 * A fresh 1 MB Buffer per image made V8 collect on "external memory
 * pressure", and once a few of those Buffers had been promoted to the old
 * generation, run a full mark-compact of the whole heap every ~30 images
 * (measured over 600 bench images: 0 mark-compacts for the bare sharp loop,
 * 26-27 in 2 of 3 runs of mediaflow). Reused Buffers are promoted once and stay.
 * The price: up to maxTotalBytes stays resident after a run of large inputs.
 *
 * Only what a job read is handed out (a subarray), so stale bytes of an
 * earlier input are never visible.
 */
export interface InputBufferLimits {
  /** Buffers larger than this are not kept (an occasional huge input does not stay resident). */
  maxBufferBytes: number;
  /** All kept buffers together stay under this. */
  maxTotalBytes: number;
}

/** Sizes are rounded up to this, so inputs of similar size share buffers. */
const GRAIN = 256 * 1024;

export class InputBuffers {
  /** Kept buffers, smallest first. */
  private readonly free: Buffer[] = [];
  private freeBytes = 0;

  constructor(private readonly limits: InputBufferLimits) {}

  /** A buffer of at least `size` bytes (its contents are whatever was there). */
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= size);
    if (i < 0) return Buffer.allocUnsafeSlow(Math.ceil(Math.max(size, 1) / GRAIN) * GRAIN);
    const [buf] = this.free.splice(i, 1);
    this.freeBytes -= buf.length;
    return buf;
  }

  /**
   * Returns a buffer from take() once nothing reads it any more: no step, and
   * no libvips work still running (an aborted job's image work may outlive
   * the job, so its buffer is not given back).
   */
  give(buf: Buffer): void {
    if (buf.length > this.limits.maxBufferBytes || this.free.includes(buf)) return;
    let at = this.free.findIndex((b) => b.length >= buf.length);
    if (at < 0) at = this.free.length;
    this.free.splice(at, 0, buf);
    this.freeBytes += buf.length;
    // Over the limit: the smallest go first (a larger one serves every size a smaller one does).
    while (this.freeBytes > this.limits.maxTotalBytes) this.freeBytes -= this.free.shift()!.length;
  }

  /** Kept buffers (tests). */
  get kept(): number {
    return this.free.length;
  }
}
