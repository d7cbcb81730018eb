import {
  AckPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager,
  type Consumer, type ConsumerInfo, type ConsumerMessages, type JsMsg,
} from '@nats-io/jetstream';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { JobRequest } from '../events/job-request.js';
import type { MediaEvent } from '../events/media-event.js';
import type { Logger } from '../log.js';
import { maskUrl } from '../urls.js';
import { handleMessage, type MessageOutcome, type MessageSink } from './message.js';
import type { Source } from './source.js';

export interface NatsSourceOptions {
  /** nats://host:4222, comma-separated */
  servers: string;
  stream: string;
  consumer: string;
  ackWaitMs: number;
  maxDeliver: number;
  logger: Logger;
  /** First delay between attempts to connect or find the stream; doubles up to 30 s. @default 1000 */
  retryMs?: number;
}

const MAX_RETRY_MS = 30_000;
const ms = (n: number) => n * 1_000_000; // JetStream durations are nanoseconds

/** An operator's mistake (a missing stream, a consumer of the wrong kind): logged as is, retried until fixed. */
class SetupError extends Error {}

const isApiError = (err: unknown, code: number) => err instanceof JetStreamApiError && err.code === code;

/**
 * A durable pull consumer on a JetStream stream; every message goes through
 * handleMessage and is acknowledged only once what it asks is in the ledger.
 * One message is in hand at a time (consume with max_messages 1, awaiting
 * each), so a service waiting for queue room simply stops pulling.
 * Connection loss is the client library's job (it reconnects forever and
 * re-pulls); this class covers what it does not: a server unreachable at
 * start, a stream or consumer missing or deleted mid-run.
 */
export class NatsSource implements Source {
  readonly name: string;
  private readonly servers: string[];
  private readonly auth: Pick<ConnectionOptions, 'user' | 'pass' | 'token'>;
  private readonly shown: string;
  private readonly log: Logger;
  private sink: MessageSink | null = null;
  private nc: NatsConnection | null = null;
  private messages: ConsumerMessages | null = null;
  private connected = false;
  private consuming = false;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** The last failure logged at error level; the same again is logged at debug, so a long outage is one line. */
  private reported: string | null = null;
  /** The consumer's own max_deliver (-1: unlimited), as the server applies it. */
  private maxDeliver: number;
  /** term(reason) is understood from server 2.11 on; older ones ignore a "+TERM <reason>" ack altogether. */
  private termReasons = false;

  constructor(readonly options: NatsSourceOptions) {
    const urls = options.servers.split(',').map((s) => s.trim()).filter(Boolean);
    this.shown = urls.map(maskUrl).join(',');
    this.name = `nats:${options.stream}/${options.consumer}@${this.shown}`;
    this.log = options.logger.child({ source: this.name });
    this.maxDeliver = options.maxDeliver;
    // nats.js takes credentials as options, not in the URL (it would read "user:pass@host" as a port).
    this.auth = {};
    this.servers = urls.map((raw) => {
      let u: URL;
      try { u = new URL(raw); } catch { return raw; }
      if (u.username && u.password) Object.assign(this.auth, { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) });
      else if (u.username) this.auth.token = decodeURIComponent(u.username);
      return `${u.protocol}//${u.host}`;
    });
  }

  get ready(): boolean {
    return this.connected && this.consuming && !this.stopping;
  }

  async start(emit: (event: MediaEvent) => Promise<void>, submit: (request: JobRequest) => Promise<void>): Promise<void> {
    if (this.loop || this.stopping) return;
    this.sink = { emit, submit };
    let firstTry!: () => void;
    const tried = new Promise<void>((resolve) => { firstTry = resolve; });
    // The loop never rejects: every failure is logged and retried inside it.
    this.loop = this.run(firstTry);
    await tried;
  }

  /** Connects, finds the consumer, consumes until that ends, and again, until stop(). */
  private async run(firstTry: () => void): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const nc = await this.connection();
        const consumer = await this.consumer(nc);
        if (this.stopping) break;
        // abort_on_missing_resource: a stream or consumer deleted mid-run ends consume() with an error
        // (instead of it waiting forever); the next round recreates the consumer or says the stream is gone.
        // expires 10 s (default 30): heartbeats every 5 s, so a server that never says the consumer is
        // gone (before 2.10 it does not) or a silent stall is noticed after two missed ones, 10 s, not 30.
        const messages = await consumer.consume({ max_messages: 1, expires: 10_000, abort_on_missing_resource: true });
        this.messages = messages;
        if (this.stopping) messages.stop(); // stop() came while consume() was being set up
        void this.watch(messages).catch(() => {});
        this.consuming = true;
        this.reported = null;
        attempt = 0;
        this.log.info({ servers: this.shown, stream: this.options.stream, consumer: this.options.consumer }, 'consuming');
        firstTry();
        for await (const msg of messages) {
          // Already on its way when stop() came: back to the stream at once, for this or another instance.
          if (this.stopping) { this.settle(() => msg.nak()); continue; }
          await this.handle(msg);
        }
      } catch (err) {
        this.report(err);
      } finally {
        this.consuming = false;
        this.messages = null;
      }
      firstTry();
      if (this.stopping) break;
      await this.pause(Math.min((this.options.retryMs ?? 1000) * 2 ** Math.min(attempt, 10), MAX_RETRY_MS));
    }
  }

  private async connection(): Promise<NatsConnection> {
    if (this.nc && !this.nc.isClosed()) return this.nc;
    const nc = await connect({
      servers: this.servers, ...this.auth, name: 'mediaflow',
      ...(this.servers.some((s) => s.startsWith('tls:')) ? { tls: {} } : {}),
      // Once connected, the library reconnects forever (re-pulling the consumer); the first connection is ours to retry.
      reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 1000, timeout: 5000,
    });
    this.nc = nc;
    this.connected = true;
    this.termReasons = serverAtLeast(nc.info?.version, 2, 11);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.connected = false;
          if (!this.stopping) this.log.warn({ servers: this.shown }, 'NATS connection lost; reconnecting');
        } else if (s.type === 'reconnect') {
          this.connected = true;
          this.log.info({ server: s.server }, 'NATS reconnected');
        }
      }
    })().catch(() => {});
    void nc.closed().then((err) => {
      this.connected = false;
      if (err && !this.stopping) this.log.error({ err, servers: this.shown }, 'NATS connection closed');
    });
    if (this.stopping) await nc.close().catch(() => {});
    return nc;
  }

  /**
   * The stream is the operator's (its subjects, retention, replicas are theirs to choose); the
   * consumer is ours: created if missing. One that exists with another ack_wait or max_deliver
   * is updated to the pipeline's values, so what the pipeline file says is what applies; if
   * the update is refused (permissions), its own settings stand and that is logged.
   */
  private async consumer(nc: NatsConnection): Promise<Consumer> {
    const { stream, consumer: name, ackWaitMs, maxDeliver } = this.options;
    const jsm = await jetstreamManager(nc).catch((err: unknown) => {
      if ((err as Error).name !== 'JetStreamNotEnabled') throw err;
      throw new SetupError(`JetStream is not enabled on ${this.shown}: start nats-server with -js (or enable JetStream for this account)`);
    });
    const wanted = { ack_wait: ms(ackWaitMs), max_deliver: maxDeliver };
    let info: ConsumerInfo;
    try {
      info = await jsm.consumers.info(stream, name);
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.StreamNotFound)) {
        throw new SetupError(`stream ${stream} does not exist on ${this.shown}: create it, e.g. \`nats stream add ${stream} --subjects <subject>\` (the subject MinIO or your producers publish to)`);
      }
      if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
      info = await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.Explicit, ...wanted });
      this.log.info({ stream, consumer: name, ackWaitMs, maxDeliver }, 'durable consumer created');
    }
    const c = info.config;
    if (c.deliver_subject) throw new SetupError(`consumer ${name} of stream ${stream} is a push consumer; mediaflow needs a pull consumer: delete it, or name another consumer`);
    if (c.ack_policy !== AckPolicy.Explicit) throw new SetupError(`consumer ${name} of stream ${stream} has ack_policy ${c.ack_policy}; mediaflow needs explicit acks (or messages are lost): delete it, or name another consumer`);
    if (c.ack_wait !== wanted.ack_wait || c.max_deliver !== wanted.max_deliver) {
      const was = { ackWaitMs: Math.round((c.ack_wait ?? 0) / 1e6), maxDeliver: c.max_deliver };
      try {
        info = await jsm.consumers.update(stream, name, wanted);
        this.log.info({ was, now: { ackWaitMs, maxDeliver } }, 'existing consumer updated to the pipeline\'s ackWaitMs and maxDeliver');
      } catch (err) {
        this.log.warn({ err, was }, 'existing consumer could not be updated: its own ack_wait and max_deliver stand');
      }
    }
    this.maxDeliver = info.config.max_deliver ?? -1;
    return jetstream(nc).consumers.get(stream, name);
  }

  /** What the library does about heartbeats and resets, for whoever debugs a stalled consumer. */
  private async watch(messages: ConsumerMessages): Promise<void> {
    for await (const s of messages.status()) {
      if (s.type !== 'next' && s.type !== 'heartbeat') this.log.debug({ status: s }, 'consumer status');
    }
  }

  private async handle(msg: JsMsg): Promise<void> {
    const deliveries = msg.info.deliveryCount;
    const log = this.log.child({ seq: msg.seq, subject: msg.subject, deliveries });
    // emit/submit may wait long for queue room: tell the server we are still at it, or it redelivers.
    const progress = setInterval(() => this.settle(() => msg.working()), Math.max(250, Math.floor(this.options.ackWaitMs / 3)));
    let outcome: MessageOutcome;
    try {
      outcome = await handleMessage(msg.data, this.name, this.sink!, log);
    } catch (err) {
      outcome = { kind: 'retry', reason: err instanceof Error ? err.message : String(err) };
    } finally {
      clearInterval(progress);
    }
    if (outcome.kind === 'ack') {
      // Confirmed, so an ack lost to a disconnect is known; the redelivery that follows is a ledger no-op.
      const confirmed = await msg.ackAck().catch((err: unknown) => { log.warn({ err }, 'ack not confirmed; the message may be delivered again'); return true; });
      if (!confirmed) log.warn('message was already acknowledged');
    } else if (outcome.kind === 'dead-letter') {
      // No dead-letter queue in JetStream: term it (never delivered again; the server publishes a
      // MSG_TERMINATED advisory) and say why here, where the operator looks.
      this.settle(() => msg.term(this.termReasons ? outcome.reason.slice(0, 500) : undefined));
      log.error({ reason: outcome.reason }, 'message cannot be processed: terminated (not delivered again)');
    } else if (this.maxDeliver > 0 && deliveries >= this.maxDeliver) {
      // The server will not deliver it again anyway; term makes that explicit and at once.
      this.settle(() => msg.term(this.termReasons ? `given up after ${deliveries} deliveries: ${outcome.reason}`.slice(0, 500) : undefined));
      log.error({ reason: outcome.reason, maxDeliver: this.maxDeliver }, `message given up after ${deliveries} deliveries (maxDeliver)`);
    } else {
      const delayMs = Math.min(1000 * 2 ** (deliveries - 1), MAX_RETRY_MS);
      this.settle(() => msg.nak(delayMs));
      log.warn({ reason: outcome.reason, delayMs }, 'message not recorded; delivered again later');
    }
  }

  /** An ack on a closed connection throws; the message is then redelivered after ack_wait, which is what we want. */
  private settle(fn: () => void): void {
    try { fn(); } catch (err) { this.log.debug({ err }, 'acknowledgement not sent'); }
  }

  private report(err: unknown): void {
    const message = err instanceof SetupError ? err.message
      : `NATS JetStream at ${this.shown} (stream ${this.options.stream}, consumer ${this.options.consumer}): ${err instanceof Error ? err.message : String(err)}; retrying`;
    if (this.stopping) return;
    if (message === this.reported) this.log.debug({ err }, message);
    else this.log.error({ err: err instanceof SetupError ? undefined : err }, message);
    this.reported = message;
  }

  private pause(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, delayMs);
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }

  async stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      this.wake?.();
      // No more pulls; the message in hand is finished (and acknowledged) before the loop ends.
      this.messages?.stop();
      await this.loop;
      const nc = this.nc;
      this.nc = null;
      // drain: what is still buffered (the last ack) goes out before the socket closes.
      if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close().catch(() => {}));
      this.connected = false;
    })();
    return this.stopped;
  }

  async caughtUp(): Promise<void> {
    // The stream holds what arrived while stopped; there is nothing to list.
  }
}

function serverAtLeast(version: string | undefined, major: number, minor: number): boolean {
  const [a = 0, b = 0] = (version ?? '').split('.').map(Number);
  return a > major || (a === major && b >= minor);
}
