import picomatch from 'picomatch';
import type { MediaEvent } from '../events/media-event.js';
import type { LoadedPipeline } from './load.js';

export interface Route {
  pipeline: LoadedPipeline;
  /** The key relative to the pipeline's source root (prefix removed). */
  relKey: string;
}

/** The store name a pipeline's source events carry in `data.store` (a message-queue source's records are about its bucket). */
export function sourceStoreName(p: LoadedPipeline): string {
  return p.source.type === 'folder' ? `folder:${p.source.path}` : `bucket:${p.source.bucket}`;
}

/** Matches events to pipelines by store, prefix/suffix and include/exclude globs. */
export class Router {
  private readonly routes: { pipeline: LoadedPipeline; store: string; matches: (rel: string) => boolean }[];

  constructor(pipelines: LoadedPipeline[]) {
    this.routes = pipelines.map((p) => {
      const include = picomatch(p.source.include, { dot: false, nocase: true });
      const exclude = p.source.exclude.length ? picomatch(p.source.exclude, { dot: true, nocase: true }) : () => false;
      return { pipeline: p, store: sourceStoreName(p), matches: (rel: string) => include(rel) && !exclude(rel) };
    });
  }

  route(event: MediaEvent): Route[] {
    const out: Route[] = [];
    for (const r of this.routes) {
      if (r.store !== event.data.store) continue;
      let rel = event.data.key;
      const src = r.pipeline.source;
      if (src.type !== 'folder') {
        if (!rel.startsWith(src.prefix) || !rel.endsWith(src.suffix)) continue;
        rel = rel.slice(src.prefix.length);
      }
      // A folder that left is not matched by the include globs (they name files): every pipeline of the store may have keys under it.
      if (rel && ((event.type === 'removed' && event.data.folder === true) || r.matches(rel))) out.push({ pipeline: r.pipeline, relKey: rel });
    }
    return out;
  }
}
