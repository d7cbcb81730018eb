import type { Logger } from '../log.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import type { StoreRegistry } from '../stores/registry.js';
import { AmqpSource } from './amqp-source.js';
import { BucketSource } from './bucket-source.js';
import { FolderSource } from './folder-source.js';
import { NatsSource } from './nats-source.js';
import type { Source } from './source.js';

/**
 * The sources the pipelines read: one per watched folder or bucket, and one
 * per queue or durable consumer, however many pipelines read it (the router
 * gives each pipeline its events), so two pipelines on one inbox watch it
 * once. A source is named after its store, from the same registry the jobs
 * read through.
 */
export function openSources(pipelines: LoadedPipeline[], stores: StoreRegistry, logger: Logger): Source[] {
  const sources = new Map<string, Source>();
  for (const p of pipelines) {
    const src = p.source;
    const name = stores.sourceFor(p).name;
    const existing = sources.get(name);
    if (src.type === 'folder') {
      // Several pipelines on one folder: the most careful settings win.
      const prev = existing as FolderSource | undefined;
      sources.set(name, new FolderSource({
        root: src.path,
        stableMs: Math.max(src.stableMs, prev?.options.stableMs ?? 0),
        followSymlinks: src.followSymlinks && (prev?.options.followSymlinks ?? true),
        reconcileIntervalMs: src.reconcileIntervalMs,
        logger,
      }));
    } else if (src.type === 'bucket') {
      if (!existing || !(existing instanceof BucketSource)) {
        sources.set(name, new BucketSource({
          client: stores.minio(), bucket: src.bucket, reconcileIntervalMs: src.reconcileIntervalMs, logger,
        }));
      }
    } else {
      const source = src.type === 'amqp'
        ? new AmqpSource({ url: src.url, queue: src.queue, exchange: src.exchange, routingKey: src.routingKey, prefetch: src.prefetch, logger })
        : new NatsSource({ servers: src.servers, stream: src.stream, consumer: src.consumer, ackWaitMs: src.ackWaitMs, maxDeliver: src.maxDeliver, logger });
      if (!sources.has(source.name)) sources.set(source.name, source);
    }
  }
  return [...sources.values()];
}
