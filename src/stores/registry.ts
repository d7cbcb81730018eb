import type { Client } from 'minio';
import type { Logger } from '../log.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import { AmqpSource } from '../sources/amqp-source.js';
import { BucketSource } from '../sources/bucket-source.js';
import { NatsSource } from '../sources/nats-source.js';
import { FolderSource } from '../sources/folder-source.js';
import type { Source } from '../sources/source.js';
import { BucketStore } from './bucket-store.js';
import { FolderStore } from './folder-store.js';
import { minioClientFromEnv } from './minio-client.js';
import type { Store } from './store.js';

/**
 * One Store per folder or bucket, shared by every pipeline that names it, and
 * one Source per watched folder or bucket (the router splits its events
 * between pipelines), so two pipelines on one inbox watch it once.
 */
export class StoreRegistry {
  private readonly stores = new Map<string, Store>();
  private client: Client | null = null;

  constructor(private readonly env: NodeJS.ProcessEnv, private readonly logger: Logger) {}

  minio(): Client {
    if (!this.client) this.client = minioClientFromEnv(this.env);
    return this.client;
  }

  private folder(root: string): Store {
    const store = new FolderStore(root);
    return this.memo(store.name, () => store);
  }

  private bucket(bucket: string, prefix: string): Store {
    const name = prefix ? `bucket:${bucket}/${prefix}` : `bucket:${bucket}`;
    return this.memo(name, () => new BucketStore(this.minio(), bucket, prefix));
  }

  private memo(name: string, make: () => Store): Store {
    let s = this.stores.get(name);
    if (!s) { s = make(); this.stores.set(name, s); }
    return s;
  }

  /** The store a ledger row names (`folder:/abs` or `bucket:name[/prefix]`). */
  byName(name: string): Store {
    if (name.startsWith('folder:')) return this.folder(name.slice('folder:'.length));
    if (name.startsWith('bucket:')) {
      const rest = name.slice('bucket:'.length);
      const slash = rest.indexOf('/');
      return slash < 0 ? this.bucket(rest, '') : this.bucket(rest.slice(0, slash), rest.slice(slash + 1));
    }
    throw new Error(`unknown store "${name}"`);
  }

  /** Where a pipeline's inputs are read: keys are full keys (bucket prefix included). */
  sourceFor(p: LoadedPipeline): Store {
    return p.source.type === 'folder' ? this.folder(p.source.path) : this.bucket(p.source.bucket, '');
  }

  outputFor(p: LoadedPipeline): Store {
    return p.output.type === 'folder' ? this.folder(p.output.path) : this.bucket(p.output.bucket, p.output.prefix);
  }

  sourcesFor(pipelines: LoadedPipeline[]): Source[] {
    const sources = new Map<string, Source>();
    for (const p of pipelines) {
      const src = p.source;
      const name = this.sourceFor(p).name;
      const existing = sources.get(name);
      if (src.type === 'folder') {
        // Several pipelines on one folder: the most careful settings win.
        const prev = existing as FolderSource | undefined;
        sources.set(name, new FolderSource({
          root: src.path,
          stableMs: Math.max(src.stableMs, prev?.options.stableMs ?? 0),
          followSymlinks: src.followSymlinks && (prev?.options.followSymlinks ?? true),
          reconcileIntervalMs: src.reconcileIntervalMs,
          logger: this.logger,
        }));
      } else if (src.type === 'bucket') {
        if (!existing || !(existing instanceof BucketSource)) {
          sources.set(name, new BucketSource({
            client: this.minio(), bucket: src.bucket, reconcileIntervalMs: src.reconcileIntervalMs, logger: this.logger,
          }));
        }
      } else {
        // One consumer per queue or durable consumer, however many pipelines read it: the router gives each its records.
        const source = src.type === 'amqp'
          ? new AmqpSource({ url: src.url, queue: src.queue, exchange: src.exchange, routingKey: src.routingKey, prefetch: src.prefetch, logger: this.logger })
          : new NatsSource({ servers: src.servers, stream: src.stream, consumer: src.consumer, ackWaitMs: src.ackWaitMs, maxDeliver: src.maxDeliver, logger: this.logger });
        if (!sources.has(source.name)) sources.set(source.name, source);
      }
    }
    return [...sources.values()];
  }
}
