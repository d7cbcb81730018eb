/**
 * The ledger contract: what every ledger implementation must do, written
 * once and run against each (SQLite now; the shared PostgreSQL ledger runs
 * the same suite). Every call is awaited, so a ledger whose methods return
 * promises passes the same tests as one whose methods return values.
 */
import { describe, expect, it } from 'vitest';
import type { RenderClaim } from '../../src/ledger/ledger.js';
import type { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';

/** The methods the contract covers, as the rest of mediaflow calls them. */
type ContractLedger = Pick<SqliteLedger,
  'upsert' | 'get' | 'startAttempt' | 'markDone' | 'markFailed' | 'markDead' | 'markSkipped' | 'markState' | 'findRender' |
  'claimRender' | 'renewRender' | 'releaseRender' | 'onRenderReleased' | 'recordOutput' | 'outputWith' | 'counts' | 'close'>;

export interface LedgerFixture {
  /** A new, empty ledger. */
  open(): Promise<ContractLedger> | ContractLedger;
  /** A second connection to the same ledger (another process or machine would have one). */
  another(): Promise<ContractLedger> | ContractLedger;
}

const job = (key: string) => ({ pipeline: 'p', fingerprint: 'f', store: 'folder:/in', key, relKey: key, version: 'file:1:1' });
const output = (sha256: string) => ({ stepId: 's', key: `out/${sha256}.webp`, store: 'folder:/out', size: 3, sha256, contentType: 'image/webp' });
const claimOf = (jobId: number, owner = 'host-1-1', extra: Partial<Parameters<ContractLedger['claimRender']>[0]> = {}) =>
  ({ sha256: 'content', fingerprint: 'f', jobId, owner, leaseMs: 60_000, ...extra });

export function describeLedgerContract(name: string, fixture: LedgerFixture): void {
  describe(`ledger contract: ${name}`, () => {
    async function running(l: ContractLedger, key: string) {
      const { job: j } = await l.upsert(job(key));
      return (await l.startAttempt(j.id))!;
    }

    it('one render per content: the first claim wins, a second job of the same content is told to wait', async () => {
      const l = await fixture.open();
      const a = await running(l, 'a.jpg');
      const b = await running(l, 'b.jpg');
      expect(await l.claimRender(claimOf(a.id))).toEqual({ kind: 'claimed' });
      const second = await l.claimRender(claimOf(b.id, 'host-2-2'));
      expect(second).toMatchObject({ kind: 'busy', jobId: a.id, owner: 'host-1-1' });
      // The same job asking again (a retry after its own process died) still holds it.
      expect(await l.claimRender(claimOf(a.id, 'host-3-3'))).toEqual({ kind: 'claimed' });
      // Another content, or the same content under another fingerprint, is another render.
      expect(await l.claimRender(claimOf(b.id, 'host-2-2', { sha256: 'other' }))).toEqual({ kind: 'claimed' });
      expect(await l.claimRender(claimOf(b.id, 'host-2-2', { fingerprint: 'g' }))).toEqual({ kind: 'claimed' });
    });

    it('when the render is done, the waiting job is given it to copy; the claim is gone with the state change', async () => {
      const l = await fixture.open();
      const a = await running(l, 'a.jpg');
      const b = await running(l, 'b.jpg');
      await l.claimRender(claimOf(a.id));
      const released: string[] = [];
      const off = await l.onRenderReleased((sha, fp) => released.push(`${sha}/${fp}`));
      await l.markDone(a.id, [output('o1')], false, 'content');
      off();
      expect(released).toEqual(['content/f']);
      const next = (await l.claimRender(claimOf(b.id, 'host-2-2'))) as Extract<RenderClaim, { kind: 'rendered' }>;
      expect(next.kind).toBe('rendered');
      expect(next.job).toMatchObject({ id: a.id, outputs: [{ sha256: 'o1' }] });
      // Its outputs gone (rendered: false): the waiting job claims the render itself.
      expect(await l.claimRender(claimOf(b.id, 'host-2-2', { rendered: false }))).toEqual({ kind: 'claimed' });
    });

    it('a failed or dead render lets the next job claim it', async () => {
      const l = await fixture.open();
      const [a, b, c] = [await running(l, 'a.jpg'), await running(l, 'b.jpg'), await running(l, 'c.jpg')];
      await l.claimRender(claimOf(a.id));
      await l.markFailed(a.id, 'store down', Date.now() + 1000, 'content');
      expect(await l.claimRender(claimOf(b.id, 'host-2-2'))).toEqual({ kind: 'claimed' });
      await l.markDead(b.id, 'corrupt', 'content');
      expect(await l.claimRender(claimOf(c.id, 'host-3-3'))).toEqual({ kind: 'claimed' });
      await l.releaseRender('content', 'f', c.id);
      expect(await l.claimRender(claimOf(a.id, 'host-1-1'))).toEqual({ kind: 'claimed' });
    });

    it('an expired claim is taken over; a renewed one is not; a claim whose owner is known gone is taken over at once', async () => {
      const l = await fixture.open();
      const [a, b, c] = [await running(l, 'a.jpg'), await running(l, 'b.jpg'), await running(l, 'c.jpg')];
      expect(await l.claimRender(claimOf(a.id, 'host-1-1', { leaseMs: -1 }))).toEqual({ kind: 'claimed' });
      expect(await l.renewRender('content', 'f', a.id, -1)).toBe(true); // still its own, still expired
      expect(await l.claimRender(claimOf(b.id, 'host-2-2'))).toEqual({ kind: 'claimed' });
      // a lost it: renewing says so.
      expect(await l.renewRender('content', 'f', a.id, 60_000)).toBe(false);
      expect(await l.renewRender('content', 'f', b.id, 60_000)).toBe(true);
      expect(await l.claimRender(claimOf(c.id, 'host-3-3'))).toMatchObject({ kind: 'busy', jobId: b.id });
      // Handing over only works against the owner that holds it now.
      expect(await l.claimRender(claimOf(c.id, 'host-3-3', { takeOverFrom: 'host-1-1' }))).toMatchObject({ kind: 'busy', jobId: b.id });
      expect(await l.claimRender(claimOf(c.id, 'host-3-3', { takeOverFrom: 'host-2-2' }))).toEqual({ kind: 'claimed' });
    });

    it('two connections racing for the same renders: exactly one claim wins each', async () => {
      const first = await fixture.open();
      const second = await fixture.another();
      try {
        const jobs = [];
        for (let i = 0; i < 40; i++) jobs.push(await running(first, `k${i}.jpg`));
        const results = await Promise.all(jobs.map((j, i) => (i % 2 ? second : first).claimRender(
          claimOf(j.id, `host-${i}-${i}`, { sha256: `content-${Math.floor(i / 4)}` }))));
        const winners = new Map<string, number>();
        results.forEach((r, i) => { if (r.kind === 'claimed') winners.set(`content-${Math.floor(i / 4)}`, (winners.get(`content-${Math.floor(i / 4)}`) ?? 0) + 1); });
        expect([...winners.values()]).toEqual(Array(10).fill(1));
        expect(results.filter((r) => r.kind === 'busy')).toHaveLength(30);
      } finally {
        await second.close();
      }
    });

    it('knows every output it wrote by checksum, recorded before the write and on done', async () => {
      const l = await fixture.open();
      const a = await running(l, 'a.jpg');
      expect(await l.outputWith('o1')).toBeNull();
      await l.recordOutput('o1', a.id);
      expect(await l.outputWith('o1')).toEqual({ jobId: a.id, pipeline: 'p', key: 'a.jpg' });
      await l.markDone(a.id, [output('o1'), output('o2')], false, 'content');
      expect(await l.outputWith('o2')).toMatchObject({ jobId: a.id });
      // An input's own checksum is not an output's.
      expect(await l.outputWith('content')).toBeNull();
    });

    it('a skipped job is finished: it counts as skipped, is not started again and holds no claim', async () => {
      const l = await fixture.open();
      const a = await running(l, 'a.jpg');
      const b = await running(l, 'b.jpg');
      await l.claimRender(claimOf(a.id));
      expect(await l.markSkipped(a.id, 'an output of mediaflow', 'content')).toMatchObject({ state: 'skipped', error: 'an output of mediaflow', sha256: 'content' });
      expect(await l.startAttempt(a.id)).toBeNull();
      expect((await l.counts()).skipped).toBe(1);
      expect(await l.claimRender(claimOf(b.id, 'host-2-2'))).toEqual({ kind: 'claimed' });
    });
  });
}
