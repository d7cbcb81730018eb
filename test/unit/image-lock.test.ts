import { describe, expect, it } from 'vitest';
import { ImageLock } from '../../src/steps/image-lock.js';

/** A promise and its resolver: a holder that finishes when told. */
function gate(): { done: Promise<void>; open: () => void } {
  let open = (): void => {};
  const done = new Promise<void>((r) => { open = r; });
  return { done, open };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('ImageLock', () => {
  it('lets shared holders run together', async () => {
    const lock = new ImageLock();
    const a = gate();
    const b = gate();
    const runs = [lock.runShared(() => a.done), lock.runShared(() => b.done)];
    await tick();
    expect(lock.holders).toEqual({ shared: 2, exclusive: false });
    a.open(); b.open();
    await Promise.all(runs);
    expect(lock.holders).toEqual({ shared: 0, exclusive: false });
  });

  it('runs an exclusive holder alone: after the shared ones before it, before the ones after it', async () => {
    const lock = new ImageLock();
    const order: string[] = [];
    const first = gate();
    const alone = gate();
    const runs = [
      lock.runShared(async () => { order.push('shared 1 starts'); await first.done; order.push('shared 1 ends'); }),
      lock.runExclusive(async () => { order.push('exclusive starts'); await alone.done; order.push('exclusive ends'); }),
      lock.runShared(async () => { order.push('shared 2 starts'); }),
    ];
    await tick();
    expect(order).toEqual(['shared 1 starts']); // shared 2 waits behind the exclusive waiter: no starvation
    first.open();
    await tick();
    expect(lock.holders).toEqual({ shared: 0, exclusive: true });
    alone.open();
    await Promise.all(runs);
    expect(order).toEqual(['shared 1 starts', 'shared 1 ends', 'exclusive starts', 'exclusive ends', 'shared 2 starts']);
  });

  it('releases when the holder throws', async () => {
    const lock = new ImageLock();
    await expect(lock.runExclusive(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    await expect(lock.runShared(async () => 'next')).resolves.toBe('next');
    expect(lock.holders).toEqual({ shared: 0, exclusive: false });
  });

  it('runs at most its slots of shared holders, the next as one ends', async () => {
    const lock = new ImageLock(2);
    const gates = [gate(), gate(), gate()];
    const started: number[] = [];
    const runs = gates.map((g, i) => lock.runShared(async () => { started.push(i); await g.done; }));
    await tick();
    expect(started).toEqual([0, 1]);
    gates[1]!.open();
    await tick();
    expect(started).toEqual([0, 1, 2]);
    expect(lock.holders).toEqual({ shared: 2, exclusive: false });
    gates[0]!.open(); gates[2]!.open();
    await Promise.all(runs);
  });

  it('starts waiters at once when its slots are raised, and refuses fewer than one', async () => {
    const lock = new ImageLock(1);
    const a = gate();
    const b = gate();
    const runs = [lock.runShared(() => a.done), lock.runShared(() => b.done)];
    await tick();
    expect(lock.holders.shared).toBe(1);
    lock.setSlots(2);
    await tick();
    expect(lock.holders.shared).toBe(2);
    expect(() => lock.setSlots(0)).toThrow('Expected image slots to be >= 1, got `0`');
    a.open(); b.open();
    await Promise.all(runs);
  });

  it('runs soon waiters before the other shared waiters, never before an exclusive one', async () => {
    const lock = new ImageLock(1);
    const order: string[] = [];
    const holder = gate();
    const runs = [
      lock.runShared(async () => { await holder.done; }),
      lock.runShared(async () => { order.push('decode 2'); }),
      lock.runExclusive(async () => { order.push('alone'); }),
      lock.runShared(async () => { order.push('decode 3'); }),
      lock.runShared(async () => { order.push('output 1a'); }, true),
      lock.runShared(async () => { order.push('output 1b'); }, true),
    ];
    await tick();
    holder.open();
    await Promise.all(runs);
    expect(order).toEqual(['decode 2', 'alone', 'output 1a', 'output 1b', 'decode 3']);
  });
});
