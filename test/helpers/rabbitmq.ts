/**
 * The machine's RabbitMQ for the AMQP source tests (MEDIAFLOW_TEST_AMQP,
 * default amqp://guest:guest@127.0.0.1:5672). Each test uses queues and
 * exchanges of its own (mf-test-<random>) and deletes them afterwards.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import amqp, { type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { describeNeeding } from './needs-server.js';
import { waitFor } from './wait.js';

export const AMQP_URL = process.env.MEDIAFLOW_TEST_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
/** Stops and starts the broker for the restart test; that test is skipped without it. */
export const RABBITMQCTL = process.env.RABBITMQCTL ?? '/usr/sbin/rabbitmqctl';

let reachable: string | null | undefined;
function unreachable(): string | null {
  if (reachable !== undefined) return reachable;
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import amqp from 'amqplib';
    const c = await amqp.connect(${JSON.stringify(AMQP_URL)}, { timeout: 5000 }); await c.close();`],
  { encoding: 'utf8', cwd: process.cwd(), timeout: 10_000 });
  reachable = probe.status === 0 ? null : (probe.stderr.trim().split('\n').filter((l) => /Error/.test(l))[0] ?? `exit ${probe.status}`);
  return reachable;
}

/** describe() for suites that need RabbitMQ (see describeNeeding). */
export function describeRabbitmq(name: string, fn: () => void): void {
  const why = unreachable();
  describeNeeding('a RabbitMQ server', why === null ? null : `No RabbitMQ at ${AMQP_URL.replace(/:[^:@/]*@/, ':***@')}: ${why} (set MEDIAFLOW_TEST_AMQP)`, name, fn);
}

export const uniqueName = (what: string): string => `mf-test-${what}-${randomBytes(6).toString('hex')}`;

/**
 * One connection for a test's own publishing and inspection. `track` names
 * queues and exchanges to delete in close(); a failed operation closes a
 * channel, so each runs on a fresh one.
 */
export class Broker {
  private conn: Promise<ChannelModel> | null = null;
  private readonly queues = new Set<string>();
  private readonly exchanges = new Set<string>();
  constructor(private readonly url = AMQP_URL) {}

  /** Opened on first use, and again after a broker restart closed it. */
  private connection(): Promise<ChannelModel> {
    this.conn ??= amqp.connect(this.url).then((c) => {
      c.on('error', () => {});
      c.on('close', () => { this.conn = null; });
      return c;
    }, (err: unknown) => { this.conn = null; throw err; });
    return this.conn;
  }

  track(kind: 'queue' | 'exchange', ...names: string[]): void {
    for (const n of names) (kind === 'queue' ? this.queues : this.exchanges).add(n);
  }

  async with<T>(fn: (ch: ConfirmChannel) => Promise<T>): Promise<T> {
    const ch = await (await this.connection()).createConfirmChannel();
    ch.on('error', () => {});
    try {
      const result = await fn(ch);
      await ch.waitForConfirms();
      return result;
    } finally {
      await ch.close().catch(() => {});
    }
  }

  /** Publishes (confirmed) to a queue by the default exchange, or to an exchange with a routing key. */
  async publish(body: string | object, to: { queue: string } | { exchange: string; routingKey: string }, headers?: Record<string, unknown>): Promise<void> {
    const content = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    await this.with(async (ch) => {
      if ('queue' in to) ch.sendToQueue(to.queue, content, { persistent: true, headers });
      else ch.publish(to.exchange, to.routingKey, content, { persistent: true, headers });
    });
  }

  /** Messages ready in a queue (not counting those delivered and not yet acknowledged). */
  async ready(queue: string): Promise<number> {
    return this.with(async (ch) => (await ch.checkQueue(queue)).messageCount);
  }

  /** Takes (and acknowledges) every message now ready in `queue`. */
  async drain(queue: string): Promise<GetMessage[]> {
    return this.with(async (ch) => {
      const got: GetMessage[] = [];
      for (let m = await ch.get(queue); m; m = await ch.get(queue)) {
        got.push(m);
        ch.ack(m);
      }
      return got;
    });
  }

  async close(): Promise<void> {
    try {
      for (const q of this.queues) await this.with((ch) => ch.deleteQueue(q)).catch(() => {});
      for (const x of this.exchanges) await this.with((ch) => ch.deleteExchange(x)).catch(() => {});
    } finally {
      const conn = this.conn;
      this.conn = null;
      await conn?.then((c) => c.close()).catch(() => {});
    }
  }
}

const run = promisify(execFile);

/**
 * Stops the broker's application (every connection is closed; the port stops
 * answering), runs `whileDown`, then starts it again and waits until it takes
 * connections, even when `whileDown` throws.
 */
export async function withBrokerStopped(whileDown: () => Promise<void>): Promise<void> {
  await run(RABBITMQCTL, ['stop_app'], { timeout: 60_000 });
  try {
    await whileDown();
  } finally {
    await run(RABBITMQCTL, ['start_app'], { timeout: 120_000 });
    await waitFor('RabbitMQ to take connections again', async () => {
      const c = await amqp.connect(AMQP_URL, { timeout: 2000 });
      await c.close();
      return true;
    }, 120_000, 250);
  }
}
