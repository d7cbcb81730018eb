import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type * as Minio from 'minio';
import { makeEvent, type MediaEvent } from '../events/media-event.js';
import type { Logger } from '../log.js';
import { BucketStore, userMetadata } from '../stores/bucket-store.js';
import type { StoreEntry } from '../stores/store.js';
import type { Source } from './source.js';

export interface BucketSourceOptions {
  client: Minio.Client;
  bucket: string;
  /** How often to list the bucket to catch events the listen API dropped (0: only at start and after reconnects). */
  reconcileIntervalMs?: number;
  logger: Logger;
  /** Objects this returns true for are never emitted (default: `mediaflow-output` metadata present). */
  isOutput?: (entry: StoreEntry) => boolean;
}

const EVENTS = ['s3:ObjectCreated:*', 's3:ObjectRemoved:*'];
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** Records waiting for emit beyond this are dropped and a reconcile is run instead. */
const MAX_PENDING = 10_000;

export const isMediaflowOutput = (entry: StoreEntry): boolean => entry.metadata?.['mediaflow-output'] !== undefined;

type ListenObject = { key?: string; size?: number; eTag?: string; contentType?: string; userMetadata?: Record<string, string>; sequencer?: string };
type ListenRecord = { eventName?: string; eventTime?: string; s3?: { object?: ListenObject } };

/** How long start and reconnects wait for MinIO to answer the listen request before listing anyway. */
const LISTEN_ANSWER_WAIT_MS = 5_000;

type Listener = { poller: ReturnType<Minio.Client['listenBucketNotification']>; agent: http.Agent; open: boolean; closed: boolean };

/**
 * Emits created/removed events for a whole bucket from MinIO's listen API,
 * plus `created` for every object found by listing (on start, after every
 * reconnect and every reconcileIntervalMs): the listen API persists nothing
 * and drops events for slow or absent receivers, so listing is what makes
 * delivery complete; the ledger turns repeats into no-ops.
 */
export class BucketSource implements Source {
  readonly name: string;
  private readonly store: BucketStore;
  private readonly log: Logger;
  private readonly isOutput: (entry: StoreEntry) => boolean;
  private emitFn: ((event: MediaEvent) => Promise<void>) | null = null;
  private running = false;
  private listener: Listener | null = null;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  /** Records are emitted one at a time, in stream order, each emit awaited. */
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private overflowed = false;
  private reconciling: Promise<boolean> | null = null;
  private reconcileAgain = false;
  /** key -> what we learnt about its current version, so listings stat each version once. */
  private readonly seen = new Map<string, { etag: string; output: boolean }>();

  constructor(private readonly options: BucketSourceOptions) {
    this.store = new BucketStore(options.client, options.bucket);
    this.name = this.store.name;
    this.log = options.logger.child({ source: this.name });
    this.isOutput = options.isOutput ?? isMediaflowOutput;
  }

  get ready(): boolean {
    return this.listener?.open ?? false;
  }

  async start(emit: (event: MediaEvent) => Promise<void>): Promise<void> {
    if (this.running) throw new Error(`${this.name} already started`);
    // A missing bucket is a configuration error; an unreachable server is not (it may start after us).
    const exists = await this.options.client.bucketExists(this.options.bucket).catch((err: unknown) => {
      this.log.warn({ err }, 'MinIO unreachable at start; will keep retrying');
      return true;
    });
    if (!exists) throw new Error(`${this.name}: bucket "${this.options.bucket}" does not exist`);
    this.emitFn = emit;
    this.running = true;
    // Listen first, and wait until MinIO answers (it subscribes before it answers), then list.
    await this.listen();
    // In the background: a large bucket's listing waits on the queue's backpressure for as long as the backlog runs.
    void this.reconcile();
    const every = this.options.reconcileIntervalMs ?? 60_000; // 0: only at start and after reconnects
    if (every > 0) this.reconcileTimer = setInterval(() => void this.reconcile(), every);
  }

  /** Resolves when the listings asked for so far are emitted (tests, benchmarks). */
  async caughtUp(): Promise<void> {
    while (this.reconciling) await this.reconciling;
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.reconcileTimer);
    if (this.listener) this.close(this.listener);
    this.listener = null;
    // In-flight emits are not awaited: the consumer may already be stopped, and
    // every loop checks `running` after each await, so nothing new is emitted.
  }

  /**
   * Opens a listen stream through client.listenBucketNotification, with two
   * additions the minio client lacks:
   *  - its own http.Agent, so we see the TCP connection (`ready`) and can cut
   *    it on stop/reconnect. The response is no usable signal: the pinned
   *    MinIO does not flush the listen stream (its trackingResponseWriter has
   *    no Flush), so headers and records arrive only per ~4 KB of data.
   *  - a client view whose second request fails: the poller silently
   *    re-requests when a stream ends, which would skip our reconcile; turning
   *    that into an error routes every end and every failure through down().
   */
  private listen(): Promise<void> {
    const client = this.options.client as Minio.Client & { protocol?: string; transportAgent?: http.Agent };
    const base = client.transportAgent as (http.Agent & { options?: http.AgentOptions }) | undefined;
    const AgentClass = client.protocol === 'https:' ? https.Agent : http.Agent;
    // Keep TLS settings of a custom agent; no keep-alive (the socket is this stream) and no idle timeout.
    const agent = new AgentClass({ ...(base?.options ?? {}), keepAlive: false, timeout: undefined });
    const view = Object.create(client) as typeof client;
    view.transportAgent = agent;
    let requests = 0;
    view.makeRequestAsync = (...args: Parameters<Minio.Client['makeRequestAsync']>) => {
      if (requests++ > 0) return Promise.reject(new Error('listen stream ended'));
      const response = client.makeRequestAsync.apply(view, args);
      response.then(answered, answered);
      return response;
    };
    // MinIO subscribes the stream before it sends the response headers (with its first keep-alive,
    // within 500 ms); once they are here, no upload is missed, so the listing can start.
    // Capped: an unreachable server must not hold up start (reconnects list again anyway).
    let answered!: () => void;
    const answer = new Promise<void>((resolve) => { answered = resolve; });
    const cap = new Promise<void>((resolve) => setTimeout(resolve, LISTEN_ANSWER_WAIT_MS).unref());
    const l: Listener = { poller: null!, agent, open: false, closed: false };
    const createConnection = agent.createConnection.bind(agent) as (...a: unknown[]) => Socket;
    (agent as unknown as { createConnection: unknown }).createConnection = (...a: unknown[]) => {
      const socket = createConnection(...a);
      socket.once('connect', () => { if (!l.closed) l.open = true; });
      socket.once('close', () => this.down(l, new Error('listen connection closed')));
      return socket;
    };
    l.poller = view.listenBucketNotification(this.options.bucket, '', '', EVENTS);
    l.poller.on('notification', (record) => this.onRecord(record as ListenRecord));
    l.poller.on('error', (err) => { answered(); this.down(l, err); });
    this.listener = l;
    return Promise.race([answer, cap]);
  }

  private close(l: Listener): void {
    l.closed = true;
    l.open = false;
    l.poller.stop();
    l.agent.destroy(); // also aborts a request still waiting for headers
  }

  /** The listener ended or failed: close it and reconnect with exponential backoff + jitter. */
  private down(l: Listener, err: unknown): void {
    if (l.closed) return;
    this.close(l);
    if (this.listener !== l || !this.running) return;
    this.listener = null;
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempts++);
    const delay = Math.round(cap / 2 + (Math.random() * cap) / 2);
    this.log.warn({ err: errorText(err), delayMs: delay, attempt: this.attempts }, 'bucket listen stream lost; reconnecting');
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delay);
  }

  private async reconnect(): Promise<void> {
    if (!this.running) return;
    await this.listen();
    const ok = await this.reconcile();
    if (ok && this.listener?.open) {
      this.attempts = 0;
      this.log.info('bucket listen stream reconnected');
    }
  }

  private onRecord(record: ListenRecord): void {
    if (this.pending >= MAX_PENDING) {
      this.overflowed = true;
      return;
    }
    this.pending++;
    this.chain = this.chain
      .then(() => this.handleRecord(record))
      .catch((err: unknown) => this.log.error({ err }, 'bucket event failed'))
      .finally(() => {
        this.pending--;
        if (this.pending === 0 && this.overflowed) {
          this.overflowed = false;
          void this.reconcile();
        }
      });
  }

  private async handleRecord(record: ListenRecord): Promise<void> {
    const obj = record.s3?.object;
    // Listen records carry the key as stored, NOT query-escaped like records
    // sent to notification targets: checked against the pinned MinIO with
    // spaces, '+', '%', '%20', '?&=#' and unicode. It is the decoded key
    // already, so it is used as is; decoding again would turn 'a+b' into 'a b'.
    const key = obj?.key;
    if (!obj || !key || !this.running) return;
    if (record.eventName?.startsWith('s3:ObjectRemoved:')) {
      const known = this.seen.get(key);
      this.seen.delete(key);
      if (!known?.output) await this.emit('removed', { store: this.name, key, sequencer: obj.sequencer });
      return;
    }
    if (!record.eventName?.startsWith('s3:ObjectCreated:')) return;
    // Record metadata names look like `X-Amz-Meta-Mediaflow-Output`; userMetadata() normalises them.
    const entry: StoreEntry = { key, size: obj.size ?? 0, etag: obj.eTag, contentType: obj.contentType, metadata: userMetadata(obj.userMetadata ?? {}) };
    const output = this.isOutput(entry);
    if (obj.eTag) this.seen.set(key, { etag: obj.eTag, output });
    if (output) return;
    const changedAtMs = record.eventTime ? Date.parse(record.eventTime) : undefined;
    await this.emit('created', { store: this.name, key, size: entry.size, etag: obj.eTag, contentType: obj.contentType, mtimeMs: changedAtMs, changedAtMs, sequencer: obj.sequencer });
  }

  /** Lists the bucket and emits `created` for every non-output object. One at a time; a request during a run queues one more run. */
  private reconcile(): Promise<boolean> {
    if (this.reconciling) {
      this.reconcileAgain = true;
      return this.reconciling;
    }
    this.reconciling = (async () => {
      let ok = false;
      do {
        this.reconcileAgain = false;
        ok = await this.reconcileOnce();
      } while (this.reconcileAgain && this.running);
      return ok;
    })().finally(() => { this.reconciling = null; });
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<boolean> {
    try {
      for await (const item of this.store.list('', { metadata: true })) {
        if (!this.running) return false;
        if (await this.isOutputObject(item)) continue;
        const mtimeMs = item.mtimeMs;
        await this.emit('created', { store: this.name, key: item.key, size: item.size, etag: item.etag, mtimeMs, changedAtMs: mtimeMs });
      }
      return true;
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'bucket reconcile failed');
      return false;
    }
  }

  /**
   * MinIO lists each object's metadata; a listing without it (another S3
   * server) needs a HEAD of each new version (cached by ETag). Gone meanwhile
   * counts as "skip".
   */
  private async isOutputObject(item: StoreEntry): Promise<boolean> {
    if (item.metadata) return this.isOutput(item);
    const known = this.seen.get(item.key);
    if (known && item.etag && known.etag === item.etag) return known.output;
    const stat = await this.store.stat(item.key);
    if (!stat) return true;
    const output = this.isOutput(stat);
    if (stat.etag) this.seen.set(item.key, { etag: stat.etag, output });
    return output;
  }

  private async emit(type: MediaEvent['type'], data: MediaEvent['data']): Promise<void> {
    if (!this.running || !this.emitFn) return;
    await this.emitFn(makeEvent(this.name, type, data));
  }
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
