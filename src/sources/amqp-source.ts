import { setTimeout as sleep } from 'node:timers/promises';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options, type RecoveringChannelModel } from 'amqplib';
import type { JobRequest } from '../events/job-request.js';
import type { MediaEvent } from '../events/media-event.js';
import type { Logger } from '../log.js';
import { maskUrl } from '../urls.js';
import { handleMessage, type MessageSink } from './message.js';
import type { Source } from './source.js';

export interface AmqpSourceOptions {
  /** amqp://user:password@host:5672/vhost */
  url: string;
  queue: string;
  exchange?: string;
  routingKey: string;
  prefetch: number;
  logger: Logger;
  /** Wait before a message that could not be recorded now is delivered again; doubles while they keep failing (default 1000). */
  retryDelayMs?: number;
}

/** The header a dead-lettered copy carries its reason in. */
export const REASON_HEADER = 'x-mediaflow-reason';
const RETRY_DELAY_MAX_MS = 30_000;
/** A broker that neither answers nor refuses (a dropped SYN) counts as unreachable after this. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Consumes one durable queue (declared with its dead-letter queue when
 * missing) and hands every message to handleMessage, acknowledging it only
 * once what it asks for is in the ledger. `prefetch` is the only buffer:
 * a slow emit holds the acks back, and with them further deliveries.
 * Reconnecting is amqplib's recovery: it retries with backoff and re-runs
 * setup() (queue, binding, consumer) after each connect; what was delivered
 * and not acknowledged is delivered again, and the ledger absorbs repeats.
 */
export class AmqpSource implements Source {
  readonly name: string;
  readonly deadLetterQueue: string;
  private readonly url: string;
  private readonly log: Logger;
  private starting = false;
  private connection: RecoveringChannelModel | null = null;
  /** The channel being consumed from, while it is. */
  private consuming: { channel: ConfirmChannel; consumerTag: string } | null = null;
  private settingUp: Promise<void> | null = null;
  private readonly handling = new Set<Promise<void>>();
  private readonly stopSignal = new AbortController();
  private stopped: Promise<void> | null = null;
  /** The last failure logged at error level, so an outage is logged once and not on every retry. */
  private lastFailure: string | null = null;
  /** Messages retried in a row: the retry delay grows while the ledger (or whatever else) stays down. */
  private retriesInARow = 0;

  constructor(readonly options: AmqpSourceOptions) {
    this.url = maskUrl(options.url);
    this.name = `amqp:${this.url}#${options.queue}`;
    this.deadLetterQueue = `${options.queue}.dead-letter`;
    this.log = options.logger.child({ source: this.name });
  }

  get ready(): boolean {
    return this.consuming !== null && !this.stopSignal.signal.aborted;
  }

  async start(emit: (event: MediaEvent) => Promise<void>, submit: (request: JobRequest) => Promise<void>): Promise<void> {
    if (this.starting) throw new Error(`${this.name} already started`);
    this.starting = true;
    const sink: MessageSink = { emit, submit };
    const connection = await amqp.connect(this.options.url, {
      timeout: CONNECT_TIMEOUT_MS,
      recovery: {
        // Resolve at once: an unreachable broker must not hold the service's start (it keeps retrying).
        waitForConnect: false,
        initialDelay: 250,
        maxDelay: RETRY_DELAY_MAX_MS,
        maxRetries: Infinity,
        setup: (model: ChannelModel) => (this.settingUp = this.setup(model, sink)),
      },
    });
    if (this.stopSignal.signal.aborted) {
      await connection.close(); // stop() ran while this connected: it had nothing to close yet
      return;
    }
    this.connection = connection;
    // Without these, an 'error' with no listener would throw out of amqplib's socket handlers.
    connection.on('error', (err: Error) => this.log.debug({ error: this.describe(err) }, 'AMQP connection error'));
    connection.on('handler-error', (err: Error, event: string) => this.log.error({ error: this.describe(err), event }, 'AMQP event handler threw'));
    connection.on('connect', () => {
      this.lastFailure = null;
      this.log.info({ url: this.url, queue: this.options.queue }, 'AMQP source consuming');
    });
    connection.on('disconnect', (err: Error) => {
      this.consuming = null;
      this.log.warn({ url: this.url, error: this.describe(err) }, 'AMQP connection lost; reconnecting');
    });
    connection.on('connect-failed', (err: Error) => this.failed(err));
    connection.on('reconnect-scheduled', ({ attempt, delay }: { attempt: number; delay: number }) =>
      this.log.debug({ attempt, delayMs: delay }, 'AMQP reconnect scheduled'));
    // Resolves once consuming, or once the first failure is logged (Source.start's contract).
    await new Promise<void>((resolve) => {
      const done = () => {
        connection.off('connect', done).off('connect-failed', done);
        this.stopSignal.signal.removeEventListener('abort', done);
        resolve();
      };
      connection.on('connect', done).on('connect-failed', done);
      this.stopSignal.signal.addEventListener('abort', done);
    });
  }

  async stop(): Promise<void> {
    this.stopped ??= this.shutDown();
    return this.stopped;
  }

  async caughtUp(): Promise<void> {}

  private async shutDown(): Promise<void> {
    this.stopSignal.abort(); // ready false, no new deliveries handled, retry waits cut short
    const consuming = this.consuming;
    if (consuming) await consuming.channel.cancel(consuming.consumerTag).catch(() => {});
    // Messages being handled are acked (or nacked) on the still open channel.
    await Promise.allSettled([...this.handling]);
    // Closing the channel first waits for the broker to have taken those acks: a connection
    // closed at once can overtake them, and the messages would come again.
    await this.consuming?.channel.close().catch(() => {});
    await this.connection?.close().catch(() => {});
    // A setup running now sees the abort and fails; amqplib then closes its connection.
    await this.settingUp?.catch(() => {});
    this.consuming = null;
  }

  /** Run by amqplib after every (re)connect; a throw is a failed connect, retried with backoff. */
  private async setup(model: ChannelModel, sink: MessageSink): Promise<void> {
    const { queue, exchange, routingKey, prefetch } = this.options;
    // Until amqplib adopts the connection (after setup) nothing else listens for its errors.
    model.on('error', () => {});
    await this.declareIfMissing(model, this.deadLetterQueue, { durable: true });
    await this.declareIfMissing(model, queue, { durable: true, deadLetterExchange: '', deadLetterRoutingKey: this.deadLetterQueue });
    if (exchange !== undefined) {
      const missing = await this.probe(model, (ch) => ch.checkExchange(exchange));
      if (missing) {
        throw new Error(`exchange "${exchange}" not found: it must exist (MinIO's AMQP target declares it); mediaflow never declares it`);
      }
    }
    // Confirms, so a dead-lettered copy is known to be stored before its original is acked.
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: Error) => this.log.warn({ error: this.describe(err) }, 'AMQP channel closed by the broker'));
    channel.on('close', () => {
      // A lost connection closes its channels first, then itself in the same tick ('disconnect'
      // clears `consuming`): only a channel closed on its own is left here to act on.
      setImmediate(() => {
        if (this.consuming?.channel !== channel) return;
        this.consuming = null;
        this.restart(model, 'consuming channel closed'); // the connection is up, the channel is not
      });
    });
    await channel.prefetch(prefetch);
    if (exchange !== undefined) await channel.bindQueue(queue, exchange, routingKey);
    if (this.stopSignal.signal.aborted) throw new Error('stopped');
    const { consumerTag } = await channel.consume(queue, (msg) => this.delivered(model, channel, msg, sink), { noAck: false });
    this.consuming = { channel, consumerTag };
  }

  /**
   * Declares `queue` only when it is not there: an existing queue is used as
   * it is, whatever its arguments (declaring it with others would fail).
   * The check runs on a channel of its own, since a failed check closes it.
   */
  private async declareIfMissing(model: ChannelModel, queue: string, options: Options.AssertQueue): Promise<void> {
    if (!(await this.probe(model, (ch) => ch.checkQueue(queue)))) return;
    const channel = await model.createChannel();
    channel.on('error', () => {}); // the rejection below says it
    await channel.assertQueue(queue, options);
    await channel.close();
    this.log.info({ queue, url: this.url }, 'AMQP queue declared');
  }

  /** Runs a passive check on a throwaway channel: true when the broker answers 404 (not found). */
  private async probe(model: ChannelModel, check: (ch: Channel) => Promise<unknown>): Promise<boolean> {
    const channel = await model.createChannel();
    channel.on('error', () => {}); // a 404 closes the channel; the rejection says it
    try {
      await check(channel);
      await channel.close();
      return false;
    } catch (err) {
      if ((err as { code?: unknown }).code === 404) return true;
      throw err;
    }
  }

  private delivered(model: ChannelModel, channel: ConfirmChannel, msg: ConsumeMessage | null, sink: MessageSink): void {
    if (msg === null) {
      // The broker cancelled the consumer (the queue was deleted): recovery's setup declares it again.
      this.log.warn({ queue: this.options.queue }, 'AMQP consumer cancelled by the broker');
      this.consuming = null;
      this.restart(model, 'consumer cancelled');
      return;
    }
    // Stopping: left unacknowledged, so the broker delivers it again once the channel closes.
    if (this.stopSignal.signal.aborted) return;
    const handled = this.handle(channel, msg, sink).finally(() => this.handling.delete(handled));
    this.handling.add(handled);
  }

  private async handle(channel: ConfirmChannel, msg: ConsumeMessage, sink: MessageSink): Promise<void> {
    const at = { deliveryTag: msg.fields.deliveryTag, redelivered: msg.fields.redelivered, messageId: msg.properties.messageId };
    const outcome = await handleMessage(msg.content, this.name, sink, this.log)
      .catch((err: unknown) => ({ kind: 'retry' as const, reason: this.describe(err) }));
    try {
      if (outcome.kind === 'ack') {
        this.retriesInARow = 0;
        channel.ack(msg);
      } else if (outcome.kind === 'dead-letter') {
        this.log.error({ ...at, reason: outcome.reason, deadLetterQueue: this.deadLetterQueue }, 'message dead-lettered');
        await this.deadLetter(channel, msg, outcome.reason);
        channel.ack(msg);
      } else {
        const delayMs = Math.min((this.options.retryDelayMs ?? 1000) * 2 ** Math.min(this.retriesInARow++, 10), RETRY_DELAY_MAX_MS);
        this.log.warn({ ...at, reason: outcome.reason, delayMs }, 'message not recorded; it will be delivered again');
        // Never a hot loop: wait before handing it back (cut short by stop()).
        await sleep(delayMs, undefined, { signal: this.stopSignal.signal }).catch(() => {});
        channel.nack(msg, false, true);
      }
    } catch (err) {
      // The channel closed meanwhile (connection lost): the broker delivers it again.
      this.log.debug({ ...at, error: this.describe(err) }, 'could not settle message; it will be delivered again');
    }
  }

  /** A copy of the message with its reason, into the dead-letter queue; resolves once the broker confirmed it. */
  private deadLetter(channel: ConfirmChannel, msg: ConsumeMessage, reason: string): Promise<void> {
    const p = msg.properties;
    return new Promise((resolve, reject) => {
      channel.sendToQueue(this.deadLetterQueue, msg.content, {
        persistent: true,
        contentType: p.contentType, contentEncoding: p.contentEncoding, messageId: p.messageId,
        correlationId: p.correlationId, timestamp: p.timestamp, type: p.type, appId: p.appId,
        // Bounded: a header table over 64 KiB cannot be sent at all.
        headers: { ...p.headers, [REASON_HEADER]: reason.slice(0, 4000), 'x-mediaflow-queue': this.options.queue },
      }, (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
    });
  }

  /** Closes this connection so amqplib's recovery connects again and re-runs setup. */
  private restart(model: ChannelModel, why: string): void {
    if (this.stopSignal.signal.aborted) return;
    this.log.warn({ why }, 'AMQP source reconnecting');
    model.close().catch(() => {});
  }

  private failed(err: Error): void {
    if (this.stopSignal.signal.aborted) return;
    const error = this.describe(err);
    // One error per outage (and per new reason), not one per retry.
    if (error === this.lastFailure) {
      this.log.debug({ url: this.url, error }, 'AMQP broker still unreachable; retrying');
      return;
    }
    this.lastFailure = error;
    this.log.error({ url: this.url, queue: this.options.queue, error },
      `AMQP source cannot consume from ${this.url}: ${error}; retrying with backoff`);
  }

  /** An error's message without the URL's password, should a message ever quote it. */
  private describe(err: unknown): string {
    const message = err instanceof Error ? err.message : String(err);
    let password = '';
    try { password = decodeURIComponent(new URL(this.options.url).password); } catch { /* no password to hide */ }
    return password ? message.split(password).join('***') : message;
  }
}
