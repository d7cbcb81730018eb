import type { Client } from 'minio';
import type { LoadedPipeline } from '../pipeline/load.js';
import { BucketStore } from './bucket-store.js';
import { FolderStore } from './folder-store.js';
import { minioClientFromEnv } from './minio-client.js';
import type { Store } from './store.js';

/**
 * One Store per folder or bucket, shared by every pipeline that names it
 * (the sources of sources/open.ts are made the same way: one per watched
 * folder or bucket).
 */
export class StoreRegistry {
  private readonly stores = new Map<string, Store>();
  private client: Client | null = null;

  constructor(private readonly env: NodeJS.ProcessEnv) {}

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
}
